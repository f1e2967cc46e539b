/* faces_test.c - the Haar cascade reader and detector: the face of tests/fixtures/enhance/
 * face.jpg is found where it is (and only it), smooth images have none, and cascades the reader
 * does not handle (trees, tilted features, LBP, broken files) are refused with an error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "image/image.h"

static void test_finds_the_face(void **state)
{
    (void)state;
    img_cascade *c = NULL;
    md_err e;
    assert_int_equal(img_cascade_load(IMG_FACE_CASCADE, &c, &e), MD_OK); /* opencv-data */
    char path[1024];
    const char *src = getenv("MODELD_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/fixtures/enhance/face.jpg", src ? src : ".");
    md_image *img = NULL;
    assert_int_equal(img_load_file(path, NULL, &img, &e), MD_OK);
    img_box b[8];
    int n = -1;
    assert_int_equal(img_faces_detect(c, img, 24, b, 8, &n, &e), MD_OK);
    assert_int_equal(n, 1);
    /* the face is about 55 px wide with its top-left near (39, 27) */
    assert_in_range(b[0].x, 30, 48);
    assert_in_range(b[0].y, 18, 36);
    assert_in_range(b[0].w, 44, 68);
    assert_true(b[0].score > 3);
    img_free(img);
    /* a smooth gradient has no face */
    img = img_new(160, 120);
    for (int i = 0; i < 160 * 120; i++)
        memset(img->rgba + 4 * i, (i % 160) + (i / 160) / 2, 4);
    assert_int_equal(img_faces_detect(c, img, 24, b, 8, &n, &e), MD_OK);
    assert_int_equal(n, 0);
    img_free(img);
    img_cascade_free(c);
}

static int load_text(const char *text, md_err *e)
{
    char path[] = "/tmp/modeld_cascade_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    img_cascade *c = NULL;
    int rc = img_cascade_load(path, &c, e);
    assert_true(rc == MD_OK || c == NULL);
    img_cascade_free(c);
    remove(path);
    return rc;
}

#define HEAD                                                                                       \
    "<stageType>BOOST</stageType><featureType>HAAR</featureType><height>24</height>"               \
    "<width>24</width><stageNum>1</stageNum><stages><_><maxWeakCount>1</maxWeakCount>"             \
    "<stageThreshold>-1</stageThreshold><weakClassifiers><_><internalNodes>"

static void test_refusals(void **state)
{
    (void)state;
    md_err e;
    img_cascade *c = NULL;
    assert_int_equal(img_cascade_load("/nonexistent/c.xml", &c, &e), MD_E_FILE_NOT_FOUND);
    assert_int_equal(load_text("<stageType>BOOST</stageType><featureType>LBP</featureType>", &e),
                     MD_E_UNSUPPORTED);
    /* a tree node (left child 1) */
    assert_int_equal(load_text(HEAD "1 -1 0 0.5</internalNodes><leafValues>1 2</leafValues>", &e),
                     MD_E_UNSUPPORTED);
    /* a rectangle outside the 24x24 window */
    assert_int_equal(load_text(HEAD
                               "0 -1 0 0.5</internalNodes><leafValues>1 2</leafValues></_>"
                               "</weakClassifiers></_></stages><features><_><rects><_>20 0 8 4 -1."
                               "</_><_>20 0 4 4 2.</_></rects></_></features>",
                               &e),
                     MD_E_MODEL_INVALID);
    assert_string_equal(e.field, "cascade");
    /* a feature index past the features given */
    assert_int_equal(load_text(HEAD
                               "0 -1 3 0.5</internalNodes><leafValues>1 2</leafValues></_>"
                               "</weakClassifiers></_></stages><features><_><rects><_>0 0 8 4 -1."
                               "</_><_>0 0 4 4 2.</_></rects></_></features>",
                               &e),
                     MD_E_MODEL_INVALID);
    /* and a valid one-stump cascade loads */
    assert_int_equal(load_text(HEAD
                               "0 -1 0 0.5</internalNodes><leafValues>1 2</leafValues></_>"
                               "</weakClassifiers></_></stages><features><_><rects><_>0 0 8 4 -1."
                               "</_><_>0 0 4 4 2.</_></rects><tilted>0</tilted></_></features>",
                               &e),
                     MD_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finds_the_face),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
