/* ws_frame_fuzz.c - libFuzzer target for the WebSocket frame reader (src/http/ws.c on wslay):
 * the bytes a client sends after the upgrade, fed to a detached socket the way the hub feeds it
 * from the network. Input: byte 0 sets the chunking (the input is cut into pieces of 1 + byte0
 * bytes, so frames split at every offset are covered); the rest is the client's byte stream.
 * The handler echoes text messages (so the send path runs too) and checks what the reader
 * promises: whole messages no longer than the limit, on_close exactly once, nothing after it. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"

#define MSG_MAX 4096

typedef struct seen {
    int closes;
    int after_close;
} seen;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_message(http_ws *ws, const char *data, size_t len, bool binary, void *user)
{
    seen *s = user;
    if (s->closes)
        s->after_close++;
    assert(len <= MSG_MAX);
    if (!binary)
        http_ws_send_text(ws, data, len);
}

static void on_close(http_ws *ws, int code, void *user)
{
    (void)ws;
    seen *s = user;
    assert(code > 0 && code <= 65535);
    s->closes++;
}

static const http_ws_handler handler = {.on_message = on_message, .on_close = on_close};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)data[0] + 1;
    seen s = {0, 0};
    http_ws *ws;
    if (http__ws_detached_new(&handler, &s, MSG_MAX, &ws) != MD_OK)
        return 0;
    for (size_t off = 1; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (http__ws_detached_input(ws, data + off, n) != MD_OK)
            break;
    }
    http__ws_detached_free(ws);
    assert(s.closes == 1);
    assert(s.after_close == 0);
    return 0;
}
