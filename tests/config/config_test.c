/* config_test.c - settings: defaults, precedence (flag > env > INI > default), value syntax
 * (sizes, durations, booleans, rates), and errors that name the setting and its source. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"

static void test_defaults(void **state)
{
    (void)state;
    md_config c;
    md_err e;
    char *argv[] = {"serve", NULL};
    assert_int_equal(md_config_load(&c, 1, argv, NULL, &e), MD_OK);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8080);
    assert_string_equal(c.data_dir, "./var");
    assert_int_equal(c.body_limit, 25u * 1024 * 1024);
    assert_int_equal(c.request_timeout_ms, 30000);
    assert_true(c.access_log);
    assert_false(c.no_auth);
    assert_true(c.metrics_public);
    assert_int_equal(c.rate_read.burst, 200);
    assert_true(c.rate_read.per_sec == 100.0);
    assert_int_equal(c.upload_ttl_ms, 3600 * 1000);
    assert_string_equal(c.cors_origins, "");
    assert_int_equal(c.upload_max_bytes, 20u * 1024 * 1024);
    assert_int_equal(c.result_ttl_ms, 24 * 3600 * 1000);
    assert_int_equal(c.convert_cache_entries, 256);
    assert_int_equal(c.convert_cache_ttl_ms, 600 * 1000);
    assert_string_equal(c.web_dir, "");
    assert_string_equal(c.store, "sqlite:");
    assert_int_equal(c.store_pool, 4);
    assert_string_equal(c.blob_dir, "");
    md_config_free(&c);
}

static char ini_path[64], ini_flag[96];

/* Write text to this process's INI file; returns the "--config=<file>" flag naming it. */
static char *write_ini(const char *text)
{
    snprintf(ini_path, sizeof ini_path, "/tmp/modeld_config_test_%d.ini", (int)getpid());
    snprintf(ini_flag, sizeof ini_flag, "--config=%s", ini_path);
    FILE *f = fopen(ini_path, "w");
    fputs(text, f);
    fclose(f);
    return ini_flag;
}

static void test_precedence(void **state)
{
    (void)state;
    char *cfgflag =
        write_ini("# comment\n[server]\nport = 1111\nhost = 0.0.0.0\n; other\nlog_level = \"debug\"\nbody_limit=1M\n");
    char *env[] = {"MODELD_PORT=2222", "MODELD_LOG_LEVEL=warn", "MODELD_BIN=/ignored", "PATH=/bin", NULL};
    char *argv[] = {"serve", cfgflag, "--port", "3333", NULL};
    md_config c;
    md_err e;
    assert_int_equal(md_config_load(&c, 4, argv, env, &e), MD_OK);
    assert_int_equal(c.port, 3333);           /* flag beats env and file */
    assert_string_equal(c.log_level, "warn"); /* env beats file */
    assert_string_equal(c.host, "0.0.0.0");   /* file beats default */
    assert_int_equal(c.body_limit, 1024 * 1024);
    md_config_free(&c);
    /* the file can also come from MODELD_CONFIG */
    char envcfg[96];
    snprintf(envcfg, sizeof envcfg, "MODELD_CONFIG=%s", ini_path);
    char *env2[] = {envcfg, NULL};
    char *argv2[] = {"serve", NULL};
    assert_int_equal(md_config_load(&c, 1, argv2, env2, &e), MD_OK);
    assert_int_equal(c.port, 1111);
    md_config_free(&c);
    unlink(ini_path);
}

/* The conversion API's settings (issue 4), from each source. */
static void test_convert_settings(void **state)
{
    (void)state;
    char *cfgflag = write_ini("[convert]\nconvert_cache_entries = 17\nweb_dir = /srv/web\nresult_ttl = 1h\n");
    char *env[] = {"MODELD_UPLOAD_MAX_BYTES=150000", "MODELD_CONVERT_CACHE_TTL=90s", "MODELD_RESULT_TTL=3h", NULL};
    char *argv[] = {"serve", cfgflag, "--result-ttl", "2", NULL};
    md_config c;
    md_err e;
    assert_int_equal(md_config_load(&c, 4, argv, env, &e), MD_OK);
    assert_int_equal(c.upload_max_bytes, 150000);
    assert_int_equal(c.convert_cache_ttl_ms, 90 * 1000);
    assert_int_equal(c.result_ttl_ms, 2000); /* flag beats env beats file; bare number = seconds */
    assert_int_equal(c.convert_cache_entries, 17);
    assert_string_equal(c.web_dir, "/srv/web");
    md_config_free(&c);
    unlink(ini_path);
    char *argv2[] = {"serve", "--upload-max-bytes=2M", "--web-dir", "./w", "--convert-cache-entries=1", NULL};
    assert_int_equal(md_config_load(&c, 5, argv2, NULL, &e), MD_OK);
    assert_int_equal(c.upload_max_bytes, 2u * 1024 * 1024);
    assert_string_equal(c.web_dir, "./w");
    assert_int_equal(c.convert_cache_entries, 1);
    md_config_free(&c);
    /* admission by cost (pl_budget): defaults, flags, and the per-conversion range */
    assert_int_equal(md_config_load(&c, 1, (char *[]){"serve", NULL}, NULL, &e), MD_OK);
    assert_int_equal(c.convert_max_pixels, 16000000);
    assert_int_equal(c.convert_pixels_in_flight, 0);
    md_config_free(&c);
    char *argv3[] = {"serve", "--convert-max-pixels", "40000000", "--convert-pixels-in-flight=90000000", NULL};
    assert_int_equal(md_config_load(&c, 4, argv3, NULL, &e), MD_OK);
    assert_int_equal(c.convert_max_pixels, 40000000);
    assert_int_equal(c.convert_pixels_in_flight, 90000000);
    md_config_free(&c);
    char *argv4[] = {"serve", "--convert-max-pixels", "40000001", NULL};
    assert_int_equal(md_config_load(&c, 3, argv4, NULL, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "convert_max_pixels");
    md_config_free(&c);
}

static void test_model_settings(void **state)
{
    (void)state;
    md_config c;
    md_err e;
    assert_int_equal(md_config_defaults(&c), MD_OK);
    assert_string_equal(c.models_dir, "");
    assert_int_equal(c.canary_promote_after, 0);
    assert_int_equal(c.canary_min_requests, 20);
    assert_true(c.canary_error_margin == 0.05 && c.canary_p99_ratio == 2.0);
    md_config_free(&c);
    char *env[] = {"MODELD_CANARY_P99_RATIO=1.5", NULL};
    char *argv[] = {"serve", "--models-dir", "/srv/models", "--canary-error-margin=0.2", "--canary-promote-after",
                    "100", NULL};
    assert_int_equal(md_config_load(&c, 6, argv, env, &e), MD_OK);
    assert_string_equal(c.models_dir, "/srv/models");
    assert_true(c.canary_error_margin == 0.2 && c.canary_p99_ratio == 1.5);
    assert_int_equal(c.canary_promote_after, 100);
    md_config_free(&c);
    /* decimals: digits and one optional fraction, inside the bounds; nothing else */
    const char *bad[] = {"1.5", "-0.1", "0x1", ".5", " 0.1", "0.1 ", "nan", "inf", "1e-2", "", "0.1.2", NULL};
    for (size_t i = 0; bad[i]; i++) {
        assert_int_equal(md_config_defaults(&c), MD_OK);
        assert_int_equal(md_config_set(&c, "canary_error_margin", bad[i], "--canary-error-margin", &e),
                         MD_E_INVALID_PARAM);
        assert_string_equal(e.field, "canary_error_margin");
        assert_true(c.canary_error_margin == 0.05); /* the previous value stays */
        md_config_free(&c);
    }
    assert_int_equal(md_config_defaults(&c), MD_OK);
    assert_int_equal(md_config_set(&c, "canary_p99_ratio", "0.5", "test", &e), MD_E_INVALID_PARAM);
    assert_int_equal(md_config_set(&c, "canary_p99_ratio", "1000", "test", &e), MD_OK);
    md_config_free(&c);
}

static void test_value_syntax(void **state)
{
    (void)state;
    md_config c;
    md_err e;
    char *argv[] = {"serve", "--body-limit=512K", "--request-timeout", "500ms", "--drain-timeout=2m", "--no-auth",
                    "--access-log=off", "--rate-write", "2.5:7", "--rate-anon=3", "--cors-origins",
                    "https://a.example,http://localhost:3000", NULL};
    assert_int_equal(md_config_load(&c, 12, argv, NULL, &e), MD_OK);
    assert_int_equal(c.body_limit, 512 * 1024);
    assert_int_equal(c.request_timeout_ms, 500);
    assert_int_equal(c.drain_timeout_ms, 120000);
    assert_true(c.no_auth);
    assert_false(c.access_log);
    assert_true(c.rate_write.per_sec == 2.5);
    assert_int_equal(c.rate_write.burst, 7);
    assert_int_equal(c.rate_anon.burst, 3);
    md_config_free(&c);
}

/* Load with one bad argument and check the error names the setting and the source. */
static void expect_bad(const char *arg, const char *field, const char *needle)
{
    md_config c;
    md_err e;
    char *argv[] = {"serve", (char *)arg, NULL};
    assert_int_equal(md_config_load(&c, 2, argv, NULL, &e), MD_E_INVALID_PARAM);
    if (field)
        assert_string_equal(e.field, field);
    if (!strstr(e.msg, needle))
        fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
    md_config_free(&c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_bad("--port=70000", "port", "--port");
    expect_bad("--port=-1", "port", "0..65535");
    expect_bad("--port=80x", "port", "\"80x\"");
    expect_bad("--body-limit=12Q", "body_limit", "25M");
    expect_bad("--body-limit=0", "body_limit", "body_limit");
    expect_bad("--request-timeout=5parsecs", "request_timeout", "duration");
    expect_bad("--access-log=maybe", "access_log", "true or false");
    expect_bad("--rate-read=0", "rate_read", "rate_read");
    expect_bad("--rate-read=5:0", "rate_read", "burst");
    expect_bad("--log-level=loud", "log_level", "debug");
    expect_bad("--cors-origins=evil.example", "cors_origins", "http(s)://");
    expect_bad("--store=mysql://db/modeld", "store", "postgres://");
    expect_bad("--store-pool=0", "store_pool", "store_pool");
    expect_bad("--host=", "host", "non-empty");
    expect_bad("--frobnicate=1", NULL, "unknown option \"--frobnicate\"");
    expect_bad("stray", NULL, "unexpected argument");
    expect_bad("--jwt-secret=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", NULL, "unknown option"); /* env/file only */
    expect_bad("--port", "port", "needs a value");
    expect_bad("--upload-max-bytes=2T", "upload_max_bytes", "--upload-max-bytes");
    expect_bad("--upload-max-bytes=100", "upload_max_bytes", "1024 bytes");
    expect_bad("--result-ttl=0", "result_ttl", "duration");
    expect_bad("--convert-cache-entries=0", "convert_cache_entries", "1..1000000");
    expect_bad("--convert-cache-ttl=soon", "convert_cache_ttl", "\"soon\"");
    md_config c;
    md_err e;
    char *env[] = {"MODELD_COMPUTE_QUEUE=0", NULL};
    char *argv[] = {"serve", NULL};
    assert_int_equal(md_config_load(&c, 1, argv, env, &e), MD_E_INVALID_PARAM);
    assert_non_null(strstr(e.msg, "MODELD_COMPUTE_QUEUE"));
    md_config_free(&c);
}

/* Encryption at rest: the old-key flag repeats (items joined by commas), env and INI give a
 * comma list that replaces it; the key itself is never a flag; the combinations that cannot
 * work are refused naming the setting. */
static void test_encryption_settings(void **state)
{
    (void)state;
    md_config c;
    md_err e;
    char *argv[] = {"serve", "--encryption-key-file", "/k/new", "--encryption-old-key-file", "/k/a",
                    "--encryption-old-key-file=/k/b", NULL};
    char *env[] = {"MODELD_ENCRYPTION_OLD_KEYS=abc,def", NULL};
    assert_int_equal(md_config_load(&c, 6, argv, env, &e), MD_OK);
    assert_string_equal(c.encryption_key_file, "/k/new");
    assert_string_equal(c.encryption_old_key_file, "/k/a,/k/b");
    assert_string_equal(c.encryption_old_keys, "abc,def");
    assert_string_equal(c.encryption_key, "");
    md_config_free(&c);
    /* env gives a list; a flag replaces it, and then its repetitions add */
    char *env2[] = {"MODELD_ENCRYPTION_KEY=xyz", "MODELD_ENCRYPTION_OLD_KEY_FILE=/e/1,/e/2", NULL};
    char *argv2[] = {"serve", "--encryption-old-key-file", "/f/1", NULL};
    assert_int_equal(md_config_load(&c, 3, argv2, env2, &e), MD_OK);
    assert_string_equal(c.encryption_key, "xyz");
    assert_string_equal(c.encryption_old_key_file, "/f/1");
    md_config_free(&c);
    expect_bad("--encryption-key=abc", NULL, "unknown option"); /* env/file only */
    char *argv3[] = {"serve", "--encryption-key-file", "/k", "--encryption-old-key-file", "/a",
                     "--encryption-old-key-file", "/b,/c", NULL};
    assert_int_equal(md_config_load(&c, 7, argv3, NULL, &e), MD_E_INVALID_PARAM);
    assert_non_null(strstr(e.msg, "comma"));
    md_config_free(&c);
    char *argv4[] = {"serve", "--encryption-old-key-file", "/a", NULL};
    assert_int_equal(md_config_load(&c, 3, argv4, NULL, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "encryption_key_file");
    md_config_free(&c);
    char *env5[] = {"MODELD_ENCRYPTION_KEY=xyz", NULL};
    char *argv5[] = {"serve", "--encryption-key-file", "/k", NULL};
    assert_int_equal(md_config_load(&c, 3, argv5, env5, &e), MD_E_INVALID_PARAM);
    assert_non_null(strstr(e.msg, "not both"));
    md_config_free(&c);
}

static void test_ini_errors(void **state)
{
    (void)state;
    md_config c;
    md_err e;
    assert_int_equal(md_config_defaults(&c), MD_OK);
    const char *bad1 = "port = 1\nnonsense line\n";
    assert_int_equal(md_config_parse_ini(&c, bad1, strlen(bad1), "x.ini", &e), MD_E_INVALID_PARAM);
    assert_non_null(strstr(e.msg, "x.ini line 2"));
    const char *bad2 = "prot = 1\n";
    assert_int_equal(md_config_parse_ini(&c, bad2, strlen(bad2), "x.ini", &e), MD_E_INVALID_PARAM);
    assert_non_null(strstr(e.msg, "unknown setting \"prot\""));
    const char *bad3 = "[unterminated\n";
    assert_int_equal(md_config_parse_ini(&c, bad3, strlen(bad3), "x.ini", &e), MD_E_INVALID_PARAM);
    const char *ok = "  jwt_secret = 'abc'  \r\n\n[x]\n";
    assert_int_equal(md_config_parse_ini(&c, ok, strlen(ok), "x.ini", &e), MD_OK);
    assert_string_equal(c.jwt_secret, "abc");
    md_config_free(&c);
    char *argv[] = {"serve", "--config", "/nonexistent/modeld.ini", NULL};
    assert_int_equal(md_config_load(&c, 3, argv, NULL, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "config");
    md_config_free(&c);
}

static void test_help_lists_every_setting(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    md_config_help(f);
    fclose(f);
    const char *expect[] = {"--host ADDR", "MODELD_PORT", "default: 8080", "--data-dir", "default: ./var",
                            "--body-limit", "default: 25M", "--no-auth[=BOOL]", "MODELD_JWT_SECRET",
                            "--drain-timeout", "--cors-origins", "--rate-anon", "--upload-ttl", "--test-routes",
                            "--upload-max-bytes SIZE", "default: 20M", "--result-ttl DUR", "default: 24h",
                            "MODELD_CONVERT_CACHE_ENTRIES", "--convert-cache-ttl", "default: 10m", "--web-dir DIR",
                            "MODELD_WEB_DIR"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        if (!strstr(buf, expect[i]))
            fail_msg("help lacks %s", expect[i]);
    free(buf);
    md_config c;
    md_err e;
    char *argv[] = {"serve", "--help", NULL};
    assert_int_equal(md_config_load(&c, 2, argv, NULL, &e), MD_OK);
    assert_true(c.help);
    md_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_value_syntax), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_ini_errors),   cmocka_unit_test(test_help_lists_every_setting),
        cmocka_unit_test(test_convert_settings), cmocka_unit_test(test_model_settings),
        cmocka_unit_test(test_encryption_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
