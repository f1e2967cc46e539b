/* ws_client.h - a minimal RFC 6455 client for the tests of WebSocket routes (see ws_client.c).
 * Failures are cmocka assertions. */
#ifndef MD_TESTS_COMMON_WS_CLIENT_H
#define MD_TESTS_COMMON_WS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* A TCP connection to 127.0.0.1:port (asserts it connects). The caller close()s it. */
int tu_ws_dial(uint16_t port);
/* Send the handshake for target (extra: more header lines, each ending in \r\n, or NULL) and
 * read the answer's head into head (NUL-terminated); returns the status (101 when upgraded). */
int tu_ws_open(int fd, const char *target, const char *extra, char *head, size_t cap);
/* Send one masked frame (opcode 0x1 text, 0x8 close, 0x9 ping, 0xA pong; at most 256 bytes). */
void tu_ws_send(int fd, int opcode, const void *data, size_t len);
/* One frame from the server: its opcode, or -1 when the connection ended. The payload goes to
 * buf (NUL-terminated when it fits; beyond cap it is dropped), its length to *len. */
int tu_ws_recv(int fd, char *buf, size_t cap, size_t *len);
/* The next data or close frame, answering pings on the way. */
int tu_ws_next(int fd, char *buf, size_t cap, size_t *len);
/* The status code of a close frame's payload (0 when it has none). */
int tu_ws_close_code(const char *p, size_t len);

#endif
