#ifndef CINPUTSTREAM_H
#define CINPUTSTREAM_H
#include <stddef.h>
#include <stdio.h>

/// Reads up to `size` bytes into `buffer`; returns the count, 0 at the end, -1 on error.
typedef long (*smtp_stream_read)(void *context, void *buffer, size_t size);
/// Called once when the stream is closed.
typedef void (*smtp_stream_close)(void *context);

/// A read-only C stream whose bytes come from `read` (glibc's fopencookie, BSD's funopen), for
/// libraries that read through `FILE *` (libpcap).
FILE *smtp_stream_open(void *context, smtp_stream_read read, smtp_stream_close close);
#endif
