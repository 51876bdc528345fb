#include <string.h>
#include "CSMTPScan.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// One byte at a time: the reference, and the tail of the vector loops.
static const void *find_newline_dot_scalar(const unsigned char *p, size_t i, size_t length) {
    for (; i + 1 < length; i++) {
        if (p[i] == '\n' && p[i + 1] == '.') return p + i;
    }
    return NULL;
}

const void *smtp_find_newline_dot_scalar(const void *haystack, size_t length) {
    return find_newline_dot_scalar(haystack, 0, length);
}

#if defined(__x86_64__)
#include <immintrin.h>

// Thirty-two positions at a time, where the CPU has AVX2 (checked once, at run time).
__attribute__((target("avx2")))
static const void *find_newline_dot_avx2(const unsigned char *p, size_t length) {
    size_t i = 0;
    const __m256i newline = _mm256_set1_epi8('\n');
    const __m256i dot = _mm256_set1_epi8('.');
    for (; i + 33 <= length; i += 32) {
        __m256i here = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i next = _mm256_loadu_si256((const __m256i *)(p + i + 1));
        unsigned mask = (unsigned)_mm256_movemask_epi8(_mm256_and_si256(_mm256_cmpeq_epi8(here, newline), _mm256_cmpeq_epi8(next, dot)));
        if (mask) return p + i + __builtin_ctz(mask);
    }
    return find_newline_dot_scalar(p, i, length);
}
#endif

// Finds "\n." sixteen positions at a time: one unaligned load for the LFs and one, a byte later,
// for the dots (glibc's memmem is several times slower for this two-byte needle).
static const void *find_newline_dot_sse2(const unsigned char *p, size_t length) {
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i newline = _mm_set1_epi8('\n');
    const __m128i dot = _mm_set1_epi8('.');
    for (; i + 17 <= length; i += 16) {
        __m128i here = _mm_loadu_si128((const __m128i *)(p + i));
        __m128i next = _mm_loadu_si128((const __m128i *)(p + i + 1));
        int mask = _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(here, newline), _mm_cmpeq_epi8(next, dot)));
        if (mask) return p + i + __builtin_ctz((unsigned)mask);
    }
#endif
    return find_newline_dot_scalar(p, i, length);
}

const void *smtp_find_newline_dot_sse2(const void *haystack, size_t length) {
    return find_newline_dot_sse2(haystack, length);
}

int smtp_has_sse2(void) {
#if defined(__SSE2__)
    return 1;
#else
    return 0;
#endif
}

int smtp_cpu_has_avx2(void) {
#if defined(__x86_64__)
    static int has_avx2 = -1;
    if (has_avx2 < 0) has_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    return has_avx2;
#else
    return 0;
#endif
}

const void *smtp_find_newline_dot_avx2(const void *haystack, size_t length) {
#if defined(__x86_64__)
    return find_newline_dot_avx2(haystack, length);
#else
    return find_newline_dot_sse2(haystack, length);
#endif
}

const void *smtp_find_newline_dot(const void *haystack, size_t length) {
    if (length < 2) return NULL;
#if defined(__x86_64__)
    if (smtp_cpu_has_avx2()) return find_newline_dot_avx2(haystack, length);
#endif
    return find_newline_dot_sse2(haystack, length);
}

static const char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t smtp_base64_encode(const void *input, size_t length, void *out) {
    const unsigned char *in = input;
    unsigned char *o = out;
    size_t i = 0;
    for (; i + 3 <= length; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        o[0] = base64_alphabet[v >> 18];
        o[1] = base64_alphabet[v >> 12 & 63];
        o[2] = base64_alphabet[v >> 6 & 63];
        o[3] = base64_alphabet[v & 63];
        o += 4;
    }
    if (i < length) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < length ? (unsigned)in[i + 1] << 8 : 0);
        o[0] = base64_alphabet[v >> 18];
        o[1] = base64_alphabet[v >> 12 & 63];
        o[2] = i + 1 < length ? base64_alphabet[v >> 6 & 63] : '=';
        o[3] = '=';
        o += 4;
    }
    return (size_t)(o - (unsigned char *)out);
}

// Standard base64 (RFC 4648) with padding; spaces, tabs and line breaks are skipped.
// Returns the number of bytes written to `out` (at most length / 4 * 3 + 3), or -1 for a
// character outside the alphabet, data after padding, or a length that does not fit padding.
long smtp_base64_decode(const void *input, size_t length, void *out) {
    static signed char table[256];
    static int ready = 0;
    if (!ready) {
        for (int i = 0; i < 256; i++) table[i] = -1;
        for (int i = 0; i < 64; i++) table[(unsigned char)base64_alphabet[i]] = (signed char)i;
        ready = 1;
    }
    const unsigned char *in = input;
    unsigned char *o = out;
    unsigned accumulator = 0;
    int bits = 0, symbols = 0, padding = 0;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = in[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (c == '=') { padding++; symbols++; continue; }
        if (padding > 0) return -1;
        signed char v = table[c];
        if (v < 0) return -1;
        accumulator = accumulator << 6 | (unsigned)v;
        bits += 6;
        symbols++;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (unsigned char)(accumulator >> bits);
        }
    }
    if (symbols % 4 != 0 || padding > 2) return -1;
    return (long)(o - (unsigned char *)out);
}
