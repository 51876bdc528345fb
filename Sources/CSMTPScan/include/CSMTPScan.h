#ifndef CSMTPSCAN_H
#define CSMTPSCAN_H
#include <stddef.h>

/// The first occurrence of "\n." in [haystack, haystack+length), or NULL.
/// Vectorised: AVX2 where the CPU has it (checked at run time), SSE2 otherwise.
const void *smtp_find_newline_dot(const void *haystack, size_t length);



/// Standard base64 with padding (RFC 4648) of `length` bytes into `out`, which must hold
/// (length + 2) / 3 * 4 bytes. Returns the number of bytes written.
size_t smtp_base64_encode(const void *input, size_t length, void *out);

/// Decodes standard base64 with padding, skipping blanks and line breaks, into `out`, which must
/// hold length / 4 * 3 + 3 bytes. Returns the number of bytes written, or -1 when the text is
/// not base64.
long smtp_base64_decode(const void *input, size_t length, void *out);
#endif
