#ifndef CSMTPSCAN_H
#define CSMTPSCAN_H
#include <stddef.h>

/// The first occurrence of "\n." in [haystack, haystack+length), or NULL.
/// (glibc's memmem is a GNU extension that Swift's Glibc module does not expose.)
const void *smtp_find_newline_dot(const void *haystack, size_t length);

#endif
