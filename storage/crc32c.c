/* CRC32C (Castagnoli), table-driven, used as the checksum of snapshot streams. */
#include "storage/internal.h"

#define CRC32C_POLY_REFLECTED 0x82f63b78u
#define CRC32C_INIT	      0xffffffffu
#define BITS_PER_BYTE	      8u
#define BYTE_MASK	      0xffu

void sto_crc32c_init(struct sto_crc32c *c)
{
	uint32_t i;
	unsigned bit;

	for (i = 0; i < STO_CRC_TABLE_SIZE; i++) {
		uint32_t x = i;

		for (bit = 0; bit < BITS_PER_BYTE; bit++) {
			x = (x & 1u) ? (x >> 1) ^ CRC32C_POLY_REFLECTED : x >> 1;
		}
		c->table[i] = x;
	}
	c->crc = CRC32C_INIT;
}

void sto_crc32c_update(struct sto_crc32c *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t crc = c->crc;
	size_t i;

	for (i = 0; i < len; i++) {
		crc = c->table[(crc ^ p[i]) & BYTE_MASK] ^ (crc >> BITS_PER_BYTE);
	}
	c->crc = crc;
}

uint32_t sto_crc32c_value(const struct sto_crc32c *c)
{
	return c->crc ^ CRC32C_INIT;
}
