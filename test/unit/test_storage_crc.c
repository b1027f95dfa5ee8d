/* Unit tests of CRC32C: the known check value, and the hardware and table paths agree (members
 * with and without SSE4.2 must read each other's log records and snapshot streams). */
#include "storage/internal.h"
#include "test/unit/test_storage_util.h"

#define CHECK_INPUT "123456789"
#define CHECK_VALUE 0xe3069283u /* CRC32C of CHECK_INPUT (RFC 3720, B.4) */
#define RANDOM_BYTES 4099u	/* not a multiple of 8: the byte-wise tail runs too */

START_TEST(test_check_value)
{
	uint32_t table[STO_CRC_TABLE_SIZE];
	struct sto_crc32c c;

	sto_crc32c_table(table);
	ck_assert_uint_eq(sto_crc32c(table, CHECK_INPUT, strlen(CHECK_INPUT)), CHECK_VALUE);
	/* the streaming form, fed in pieces, gives the same value */
	sto_crc32c_init(&c);
	sto_crc32c_update(&c, CHECK_INPUT, 4);
	sto_crc32c_update(&c, &CHECK_INPUT[4], strlen(CHECK_INPUT) - 4);
	ck_assert_uint_eq(sto_crc32c_value(&c), CHECK_VALUE);
	/* and a change of one bit changes it */
	ck_assert_uint_ne(sto_crc32c(table, "123456788", strlen(CHECK_INPUT)), CHECK_VALUE);
}
END_TEST

static void check_len(const uint32_t *table, const uint8_t *buf, size_t len)
{
	for (size_t off = 0; off < 8 && off <= len; off++) {
		ck_assert_uint_eq(sto_crc32c_extend(table, 0xffffffffu, buf + off, len - off),
				  sto_crc32c_sw(table, 0xffffffffu, buf + off, len - off));
	}
}

START_TEST(test_paths_agree)
{
	uint32_t table[STO_CRC_TABLE_SIZE];
	uint8_t buf[RANDOM_BYTES];
	uint64_t x = 0x9e3779b97f4a7c15ull;

	sto_crc32c_table(table);
	for (size_t i = 0; i < sizeof(buf); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	if (!__builtin_cpu_supports("sse4.2"))
#endif
		fprintf(stderr, "\n******** NOTE: no SSE4.2 here: test_paths_agree compares the table "
				"path with itself ********\n\n");
	/* every length up to 64 (each tail size), then every 331 bytes, then the whole buffer */
	for (size_t len = 0; len <= sizeof(buf); len += len < 64 ? 1 : 331) {
		check_len(table, buf, len);
	}
	check_len(table, buf, sizeof(buf));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("storage_crc");
	TCase *tc = tcase_create("crc");

	tcase_add_test(tc, test_check_value);
	tcase_add_test(tc, test_paths_agree);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run(suite());
}
