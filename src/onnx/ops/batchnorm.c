/* batchnorm.c - ONNX BatchNormalization, every opset (1 to 15), on kernels/batchnorm.c.
 *
 * Inference form everywhere; the training form (training_mode=1, opset 14+) normalizes with the
 * batch statistics and returns the updated running mean/variance, as ONNX's reference does.
 * Old opsets' spatial=0 (per-element statistics of shape C x D1 x ...) runs as the per-channel
 * kernel with C*D1*... "channels" of one element each. A following activation is absorbed.
 */
#include <stdlib.h>
#include <string.h>

#include "onnx/kernels/fuse.h"
#include "onnx/kernels/kernels.h"
#include "onnx/onnx_int.h"

typedef struct bn_priv {
    onnx_kact act;
} bn_priv;

static int training(const onnx_node *n)
{
    return n->opset >= 14 && onnx__attr_int(n, "training_mode", 0) != 0;
}

static int prepare_bn(onnx_node *n, onnx_prep *p, md_err *err)
{
    /* opsets before 14 describe training outputs (saved mean/var) that no exporter emits for
     * inference; refuse them at load rather than return wrong statistics */
    for (int i = 1; n->opset < 14 && i < n->n_out; i++)
        if (n->out[i] >= 0)
            return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "outputs",
                                   "training outputs of BatchNormalization-%d are not supported",
                                   n->opset);
    bn_priv *bp = onnx__prep_alloc(p, sizeof *bp);
    if (bp == NULL)
        return onnx__prep_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    n->priv = bp;
    /* the running-statistics outputs of the training form must stay separate values */
    if (training(n))
        return MD_OK;
    return onnx__absorb_act(p, n, &bp->act, err);
}

static int check_params(onnx_kctx *k, int64_t per)
{
    static const char *const names[] = {"X", "scale", "B", "input_mean", "input_var"};
    for (int i = 1; i < 5; i++) {
        const onnx_tensor *t = k->in[i];
        if (t == NULL || t->dtype != ONNX_FLOAT)
            return onnx__kfail(k, MD_E_UNSUPPORTED, "%s must be a float32 tensor", names[i]);
        if (onnx_tensor_numel(t) != per)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "%s has %lld values, expected %lld",
                               names[i], (long long)onnx_tensor_numel(t), (long long)per);
    }
    return MD_OK;
}

static int run_bn(const onnx_node *n, onnx_kctx *k)
{
    const bn_priv *bp = n->priv;
    const onnx_tensor *x = k->in[0];
    if (x->dtype != ONNX_FLOAT)
        return onnx__kfail(k, MD_E_UNSUPPORTED, "X must be float32, got %s",
                           onnx_dtype_name(x->dtype));
    if (x->rank < 2)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X must have rank >= 2 (N x C x ...)");
    int64_t c = x->dims[1], sp = 1;
    for (int i = 2; i < x->rank; i++)
        sp *= x->dims[i];
    if (n->opset < 9 && onnx__attr_int(n, "spatial", 1) == 0) {
        c *= sp; /* per-element statistics */
        sp = 1;
    }
    int rc = check_params(k, c);
    onnx_tensor *y, *rm = NULL, *rv = NULL;
    if (!rc)
        rc = onnx__output(k, 0, ONNX_FLOAT, x->rank, x->dims, &y);
    if (rc)
        return rc;
    const float *s = k->in[1]->data, *b = k->in[2]->data, *mean = k->in[3]->data,
                *var = k->in[4]->data;
    float eps = onnx__attr_float(n, "epsilon", 1e-5f);
    if (!training(n)) {
        onnx__batchnorm(x->dims[0], c, sp, x->data, s, b, mean, var, eps, &bp->act, y->data);
        return MD_OK;
    }
    for (int i = 1; i < 3 && i < n->n_out; i++)
        if (n->out[i] >= 0 &&
            (rc = onnx__output(k, i, ONNX_FLOAT, k->in[3]->rank, k->in[3]->dims,
                               i == 1 ? &rm : &rv)))
            return rc;
    onnx__batchnorm_train(x->dims[0], c, sp, x->data, s, b, mean, var, eps,
                          onnx__attr_float(n, "momentum", 0.9f), y->data,
                          rm ? rm->data : NULL, rv ? rv->data : NULL);
    return MD_OK;
}

ONNX_OPS(batchnorm) = {
    {.domain = "", .op_type = "BatchNormalization", .opset_min = 1, .opset_max = 0, .min_in = 5,
     .max_in = 5, .min_out = 1, .max_out = 5,
     .attrs = "epsilon:f momentum:f spatial:i is_test:i consumed_inputs:I training_mode:i",
     .prepare = prepare_bn, .run = run_bn},
    ONNX_OPS_END
};
