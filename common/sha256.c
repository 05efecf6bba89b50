/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <sha2.h>
#include <stdio.h>
#include <string.h>

#include "sha256.h"

int sha256_raw(const void *data, size_t size, unsigned char ret[32]) {
        SHA2_CTX ctx;

        SHA256Init(&ctx);
        SHA256Update(&ctx, data, size);
        SHA256Final(ret, &ctx);
        return 0;
}

void sha256_format(const unsigned char digest[32], char ret_hex[SHA256_HEX_SIZE]) {
        static const char hex[] = "0123456789abcdef";

        for (unsigned i = 0; i < 32; i++) {
                ret_hex[2 * i] = hex[digest[i] >> 4];
                ret_hex[2 * i + 1] = hex[digest[i] & 15];
        }
        ret_hex[64] = '\0';
}

void sha256_format_unpadded(const unsigned char digest[32], char ret_hex[SHA256_HEX_SIZE]) {
        size_t n = 0;

        for (unsigned i = 0; i < 32; i++)
                n += (size_t) snprintf(ret_hex + n, SHA256_HEX_SIZE - n, "%x", digest[i]);
}

int sha256_hex(const void *data, size_t size, char ret_hex[SHA256_HEX_SIZE]) {
        unsigned char md[32];
        int r = sha256_raw(data, size, md);

        if (r < 0)
                return r;
        sha256_format(md, ret_hex);
        return 0;
}
