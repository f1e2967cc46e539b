/* metrics_test.c - the registry: per-route counts by status, cumulative histogram buckets,
 * registered counters/gauges/collectors, label escaping and name validation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http/http_int.h"

static void collect(md_buf *out, void *ctx)
{
    md_buf_printf(out, "# HELP my_family x\n# TYPE my_family gauge\nmy_family{k=\"%s\"} 1\n", (const char *)ctx);
}

static void test_render(void **state)
{
    (void)state;
    http_metrics *m;
    assert_int_equal(http__metrics_new(&m), MD_OK);
    http__route_stats *st = http__metrics_route(m, "GET", "/a/{id}");
    http__route_stats *q = http__metrics_route(m, "POST", "/q\"uote");
    http__metrics_observe(st, 200, 300000);     /* 0.3 ms */
    http__metrics_observe(st, 200, 2000000);    /* 2 ms */
    http__metrics_observe(st, 404, 20000000000); /* 20 s: only +Inf */
    http__metrics_observe(q, 418, 1000);
    http_counter *c = http__metrics_counter(m, "my_total", "things");
    http_gauge *g = http__metrics_gauge(m, "my_gauge", "level");
    assert_null(http__metrics_counter(m, "bad name", "x"));
    assert_null(http__metrics_gauge(m, "9lives", "x"));
    http_counter_add(c, 5);
    http_gauge_set(g, 2.5);
    http_gauge_add(g, -1.0);
    assert_int_equal(http__metrics_collector(m, collect, "v"), MD_OK);
    md_buf b;
    md_buf_init(&b, 1 << 20);
    http__server_gauges sg = {.inflight = 3, .queue_depth = 2, .queue_rejected = 7, .rate_limited = 1};
    assert_int_equal(http__metrics_render(m, &sg, &b), MD_OK);
    const char *t = b.data;
    assert_non_null(strstr(t, "modeld_http_requests_total{route=\"/a/{id}\",method=\"GET\",status=\"200\"} 2\n"));
    assert_non_null(strstr(t, "modeld_http_requests_total{route=\"/a/{id}\",method=\"GET\",status=\"404\"} 1\n"));
    assert_non_null(strstr(t, "route=\"/q\\\"uote\",method=\"POST\",status=\"other\"} 1\n"));
    assert_non_null(strstr(t, "_bucket{route=\"/a/{id}\",method=\"GET\",le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(t, "_bucket{route=\"/a/{id}\",method=\"GET\",le=\"0.0025\"} 2\n"));
    assert_non_null(strstr(t, "_bucket{route=\"/a/{id}\",method=\"GET\",le=\"10\"} 2\n"));
    assert_non_null(strstr(t, "_bucket{route=\"/a/{id}\",method=\"GET\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(t, "_count{route=\"/a/{id}\",method=\"GET\"} 3\n"));
    assert_non_null(strstr(t, "modeld_http_requests_in_flight 3\n"));
    assert_non_null(strstr(t, "modeld_compute_queue_depth 2\n"));
    assert_non_null(strstr(t, "modeld_compute_rejections_total 7\n"));
    assert_non_null(strstr(t, "my_total 5\n"));
    assert_non_null(strstr(t, "my_gauge 1.5\n"));
    assert_non_null(strstr(t, "my_family{k=\"v\"} 1\n"));
    assert_non_null(strstr(t, "# TYPE process_resident_memory_bytes gauge\n"));
    assert_non_null(strstr(t, "process_open_fds "));
    /* every non-comment line is "name[{labels}] value" */
    for (const char *line = t; *line; line = strchr(line, '\n') + 1) {
        if (*line != '#')
            assert_non_null(memchr(line, ' ', (size_t)(strchr(line, '\n') - line)));
    }
    md_buf_free(&b);
    http__metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_render)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
