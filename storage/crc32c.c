/* CRC32C (Castagnoli): checksums of log records and snapshot streams. Uses the SSE4.2 crc32
 * instruction when the CPU has it, a table otherwise; both compute the same values. */
#include <string.h>

#include "storage/internal.h"

#define CRC32C_POLY_REFLECTED 0x82f63b78u
#define CRC32C_INIT	      0xffffffffu
#define BITS_PER_BYTE	      8u
#define BYTE_MASK	      0xffu

void sto_crc32c_table(uint32_t *table)
{
	for (uint32_t i = 0; i < STO_CRC_TABLE_SIZE; i++) {
		uint32_t x = i;

		for (unsigned bit = 0; bit < BITS_PER_BYTE; bit++) {
			x = (x & 1u) ? (x >> 1) ^ CRC32C_POLY_REFLECTED : x >> 1;
		}
		table[i] = x;
	}
}

uint32_t sto_crc32c_sw(const uint32_t *table, uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++) {
		crc = table[(crc ^ p[i]) & BYTE_MASK] ^ (crc >> BITS_PER_BYTE);
	}
	return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define STO_CRC32C_HW 1
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *data,
							    size_t len)
{
	const uint8_t *p = data;
	uint64_t c = crc;

	while (len >= sizeof(uint64_t)) {
		uint64_t v;

		memcpy(&v, p, sizeof(v));
		c = __builtin_ia32_crc32di(c, v);
		p += sizeof(v);
		len -= sizeof(v);
	}
	crc = (uint32_t)c;
	while (len > 0) {
		crc = __builtin_ia32_crc32qi(crc, *p++);
		len--;
	}
	return crc;
}
#endif

uint32_t sto_crc32c_extend(const uint32_t *table, uint32_t crc, const void *data, size_t len)
{
#ifdef STO_CRC32C_HW
	if (__builtin_cpu_supports("sse4.2")) {
		return crc32c_hw(crc, data, len);
	}
#endif
	return sto_crc32c_sw(table, crc, data, len);
}

uint32_t sto_crc32c(const uint32_t *table, const void *data, size_t len)
{
	return sto_crc32c_extend(table, CRC32C_INIT, data, len) ^ CRC32C_INIT;
}

void sto_crc32c_init(struct sto_crc32c *c)
{
	sto_crc32c_table(c->table);
	c->crc = CRC32C_INIT;
}

void sto_crc32c_update(struct sto_crc32c *c, const void *data, size_t len)
{
	c->crc = sto_crc32c_extend(c->table, c->crc, data, len);
}

uint32_t sto_crc32c_value(const struct sto_crc32c *c)
{
	return c->crc ^ CRC32C_INIT;
}
