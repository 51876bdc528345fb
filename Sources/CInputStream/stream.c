#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include "CInputStream.h"

struct bridge {
    void *context;
    smtp_stream_read read;
    smtp_stream_close close;
};

static struct bridge *bridge_new(void *context, smtp_stream_read read, smtp_stream_close close) {
    struct bridge *b = malloc(sizeof *b);
    if (b) { b->context = context; b->read = read; b->close = close; }
    return b;
}

#if defined(__APPLE__) || defined(__FreeBSD__)
static int bridge_read(void *cookie, char *buffer, int size) {
    struct bridge *b = cookie;
    return (int)b->read(b->context, buffer, (size_t)size);
}

static int bridge_close(void *cookie) {
    struct bridge *b = cookie;
    b->close(b->context);
    free(b);
    return 0;
}

FILE *smtp_stream_open(void *context, smtp_stream_read read, smtp_stream_close close) {
    struct bridge *b = bridge_new(context, read, close);
    if (!b) return NULL;
    FILE *file = funopen(b, bridge_read, NULL, NULL, bridge_close);
    if (!file) free(b);
    return file;
}
#else
static ssize_t bridge_read(void *cookie, char *buffer, size_t size) {
    struct bridge *b = cookie;
    return (ssize_t)b->read(b->context, buffer, size);
}

static int bridge_close(void *cookie) {
    struct bridge *b = cookie;
    b->close(b->context);
    free(b);
    return 0;
}

FILE *smtp_stream_open(void *context, smtp_stream_read read, smtp_stream_close close) {
    struct bridge *b = bridge_new(context, read, close);
    if (!b) return NULL;
    cookie_io_functions_t functions = { .read = bridge_read, .write = NULL, .seek = NULL, .close = bridge_close };
    FILE *file = fopencookie(b, "rb", functions);
    if (!file) free(b);
    return file;
}
#endif
