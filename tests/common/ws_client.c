/* ws_client.c - a minimal RFC 6455 client for the tests of WebSocket routes (tests/http,
 * tests/api): blocking sockets with a 20 s receive timeout, masked frames out, unmasked frames in.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ws_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int tu_ws_dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Send the handshake for target and read the answer's head; returns the status. */
int tu_ws_open(int fd, const char *target, const char *extra, char *head, size_t cap)
{
    char req[2048];
    int n = snprintf(
        req, sizeof req,
        "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n%s\r\n",
        target, extra ? extra : "");
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t got = 0;
    while (got + 1 < cap) { /* byte by byte: nothing past the head is consumed */
        ssize_t k = read(fd, head + got, 1);
        if (k <= 0)
            break;
        got++;
        head[got] = '\0';
        if (got >= 4 && memcmp(head + got - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[got] = '\0';
    int status = 0;
    sscanf(head, "HTTP/1.1 %d", &status);
    return status;
}

void tu_ws_send(int fd, int opcode, const void *data, size_t len)
{
    unsigned char f[14 + 256];
    size_t n = 0;
    assert_true(len <= 256);
    f[n++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        f[n++] = (unsigned char)(0x80 | len);
    } else {
        f[n++] = 0x80 | 126;
        f[n++] = (unsigned char)(len >> 8);
        f[n++] = (unsigned char)len;
    }
    static const unsigned char mask[4] = {1, 2, 3, 4};
    memcpy(f + n, mask, 4);
    n += 4;
    for (size_t i = 0; i < len; i++)
        f[n++] = ((const unsigned char *)data)[i] ^ mask[i % 4];
    assert_int_equal(write(fd, f, n), (ssize_t)n);
}

static bool read_full(int fd, void *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k <= 0)
            return false;
        got += (size_t)k;
    }
    return true;
}

/* One frame from the server (never masked). -1 when the connection ended. Payloads beyond cap
 * are read and dropped. */
int tu_ws_recv(int fd, char *buf, size_t cap, size_t *len)
{
    unsigned char h[2];
    if (!read_full(fd, h, 2))
        return -1;
    assert_int_equal(h[1] & 0x80, 0);
    uint64_t n = h[1] & 0x7f;
    unsigned char ext[8];
    if (n == 126) {
        assert_true(read_full(fd, ext, 2));
        n = (uint64_t)ext[0] << 8 | ext[1];
    } else if (n == 127) {
        assert_true(read_full(fd, ext, 8));
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | ext[i];
    }
    *len = 0;
    for (uint64_t left = n; left;) {
        char tmp[4096];
        size_t k = left < sizeof tmp ? (size_t)left : sizeof tmp;
        if (!read_full(fd, tmp, k))
            return -1;
        size_t room = *len < cap ? cap - *len : 0;
        memcpy(buf + *len, tmp, k < room ? k : room);
        *len += k < room ? k : room;
        left -= k;
    }
    if (*len < cap)
        buf[*len] = '\0';
    return h[0] & 0x0f;
}

/* Next data or close frame, answering pings on the way. */
int tu_ws_next(int fd, char *buf, size_t cap, size_t *len)
{
    for (;;) {
        int op = tu_ws_recv(fd, buf, cap, len);
        if (op != 0x9)
            return op;
        tu_ws_send(fd, 0xA, buf, *len);
    }
}

int tu_ws_close_code(const char *p, size_t len)
{
    return len >= 2 ? ((unsigned char)p[0] << 8 | (unsigned char)p[1]) : 0;
}
