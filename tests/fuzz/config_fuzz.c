/* config_fuzz.c - libFuzzer target for the settings parsers: arbitrary bytes as an INI file,
 * and the first line also as a "--name=value" flag and a MODELD_* environment entry. The
 * parsers must reject garbage with an error code, never crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    md_config c;
    md_err e;
    if (md_config_defaults(&c) != MD_OK)
        return 0;
    md_config_parse_ini(&c, (const char *)data, size, "fuzz.ini", &e);
    md_config_validate(&c, &e);
    md_config_free(&c);

    const uint8_t *nl = memchr(data, '\n', size);
    size_t n = nl ? (size_t)(nl - data) : size;
    char *line = malloc(n + 1);
    if (!line)
        return 0;
    memcpy(line, data, n);
    line[n] = '\0';
    char *argv[] = {"serve", line, NULL};
    char *env[] = {line, NULL};
    md_config_load(&c, 2, argv, env, &e);
    md_config_free(&c);
    free(line);
    return 0;
}
