#define _GNU_SOURCE
#include <string.h>
#include "CSMTPScan.h"

const void *smtp_find_newline_dot(const void *haystack, size_t length) {
    return memmem(haystack, length, "\n.", 2);
}
