/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "storage/csum.h"

/* XXH64 (Yann Collet's xxHash, 64-bit variant), written from the spec. */
#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t round1(uint64_t acc, uint64_t in)
{
	acc += in * P2;
	acc = rotl(acc, 31);
	return acc * P1;
}

static inline uint64_t merge(uint64_t acc, uint64_t v)
{
	acc ^= round1(0, v);
	return acc * P1 + P4;
}

static inline uint64_t avalanche(uint64_t h)
{
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

uint64_t qv_xxh64(const void *data, size_t len, uint64_t seed)
{
	const uint8_t *p = data, *end = p + len;
	uint64_t h;

	if (len >= 32) {
		uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
		const uint8_t *limit = end - 32;
		do {
			v1 = round1(v1, rd64(p));
			v2 = round1(v2, rd64(p + 8));
			v3 = round1(v3, rd64(p + 16));
			v4 = round1(v4, rd64(p + 24));
			p += 32;
		} while (p <= limit);
		h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
		h = merge(h, v1);
		h = merge(h, v2);
		h = merge(h, v3);
		h = merge(h, v4);
	} else {
		h = seed + P5;
	}
	h += (uint64_t)len;
	for (; p + 8 <= end; p += 8) {
		h ^= round1(0, rd64(p));
		h = rotl(h, 27) * P1 + P4;
	}
	if (p + 4 <= end) {
		h ^= (uint64_t)rd32(p) * P1;
		h = rotl(h, 23) * P2 + P3;
		p += 4;
	}
	for (; p < end; p++) {
		h ^= (*p) * P5;
		h = rotl(h, 11) * P1;
	}
	return avalanche(h);
}

static inline uint64_t unit_mix(uint64_t h, uint64_t index)
{
	return avalanche(h ^ (index * P2 + P3));
}

uint64_t qv_csum_data(uint64_t off, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t sum = 0, idx = off / QV_CSUM_UNIT;

	while (len > 0) {
		size_t n = len < QV_CSUM_UNIT ? len : QV_CSUM_UNIT;
		sum += unit_mix(qv_xxh64(p, n, 0), idx++);
		p += n;
		len -= n;
	}
	return sum;
}

uint64_t qv_csum_zeroes(uint64_t off, uint64_t len)
{
	static const uint8_t zero[QV_CSUM_UNIT];
	static uint64_t hzero; /* hash of one full zero unit; benign race */
	uint64_t sum = 0, idx = off / QV_CSUM_UNIT;

	if (!hzero)
		hzero = qv_xxh64(zero, sizeof(zero), 0);
	for (; len >= QV_CSUM_UNIT; len -= QV_CSUM_UNIT)
		sum += unit_mix(hzero, idx++);
	if (len)
		sum += unit_mix(qv_xxh64(zero, len, 0), idx);
	return sum;
}
