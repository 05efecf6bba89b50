/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#define SHA256_HEX_SIZE 65

/* Lowercase hex SHA-256 of a buffer, computed with OpenSSL's libcrypto. Returns 0 or -errno. */
int sha256_hex(const void *data, size_t size, char ret_hex[SHA256_HEX_SIZE]);
