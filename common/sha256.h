/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#define SHA256_HEX_SIZE 65

/* Lowercase hex SHA-256 of a buffer, computed with libmd (BSD message digests). Returns 0 or -errno. */
int sha256_hex(const void *data, size_t size, char ret_hex[SHA256_HEX_SIZE]);

/* The raw digest, and the hex forms: lowercase zero-padded (the one we write), and the unpadded
 * one ("%x" per byte) that old Prisma versions recorded. */
int sha256_raw(const void *data, size_t size, unsigned char ret[32]);
void sha256_format(const unsigned char digest[32], char ret_hex[SHA256_HEX_SIZE]);
void sha256_format_unpadded(const unsigned char digest[32], char ret_hex[SHA256_HEX_SIZE]);
