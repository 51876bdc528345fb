#ifndef CSMTPSCAN_H
#define CSMTPSCAN_H
#include <stddef.h>

/// The first occurrence of "\n." in [haystack, haystack+length), or NULL.
/// Vectorised: AVX2 where the CPU has it (checked at run time), SSE2 otherwise.
const void *smtp_find_newline_dot(const void *haystack, size_t length);

// The implementations `smtp_find_newline_dot` chooses from, exposed so that tests can hold each
// to the same answers. Each takes any length (0 and 1 included), reads only bytes inside
// [haystack, haystack+length), and returns what `smtp_find_newline_dot` returns.

/// One byte at a time.
const void *smtp_find_newline_dot_scalar(const void *haystack, size_t length);

/// Sixteen positions at a time; the scalar loop where the build has no SSE2 (see
/// `smtp_has_sse2`).
const void *smtp_find_newline_dot_sse2(const void *haystack, size_t length);

/// Thirty-two positions at a time. Only call it when `smtp_cpu_has_avx2()` returns 1: on a CPU
/// without AVX2 it stops the process (illegal instruction). On processors other than x86-64 it
/// is the SSE2 function.
const void *smtp_find_newline_dot_avx2(const void *haystack, size_t length);

/// 1 when this build's `smtp_find_newline_dot_sse2` runs SSE2 code, 0 when it is the scalar loop.
int smtp_has_sse2(void);

/// 1 when the CPU runs AVX2 (checked once, at the first call), 0 otherwise.
int smtp_cpu_has_avx2(void);

/// Standard base64 with padding (RFC 4648) of `length` bytes into `out`, which must hold
/// (length + 2) / 3 * 4 bytes. Returns the number of bytes written.
size_t smtp_base64_encode(const void *input, size_t length, void *out);

/// Decodes standard base64 with padding, skipping blanks and line breaks, into `out`, which must
/// hold length / 4 * 3 + 3 bytes. Returns the number of bytes written, or -1 when the text is
/// not base64.
long smtp_base64_decode(const void *input, size_t length, void *out);
#endif
