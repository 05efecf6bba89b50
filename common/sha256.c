/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>

#include "sha256.h"

int sha256_hex(const void *data, size_t size, char ret_hex[SHA256_HEX_SIZE]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int md_len = 0;
        static const char hex[] = "0123456789abcdef";

        if (EVP_Digest(data, size, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
                return -EIO;
        for (unsigned i = 0; i < md_len; i++) {
                ret_hex[2 * i] = hex[md[i] >> 4];
                ret_hex[2 * i + 1] = hex[md[i] & 15];
        }
        ret_hex[64] = '\0';
        return 0;
}
