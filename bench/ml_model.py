#!/usr/bin/python3
"""Writes the model bench/ml.sh times: an XGBoost multi:softprob booster (3 classes, 100
rounds, depth 6, 20 features: 300 trees), saved as OUT/model.json and OUT/model.ubj, the same
trees as an ai.onnx.ml TreeEnsembleClassifier OUT/model.onnx (converted by
tests/fixtures/onnx_ml/gen.py's xgb_trees, as onnxmltools would), 1000 test rows OUT/x.f32 and
XGBoost's own predictions for them OUT/want.f32.  Usage: ml_model.py OUT"""
import os
import sys

import numpy as np
import onnx
import xgboost as xgb
from onnx import TensorProto, helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "onnx_ml"))
import gen  # noqa: E402  (the fixture generator's XGBoost -> TreeEnsemble conversion)

out = sys.argv[1]
rng = np.random.default_rng(7)
x = rng.normal(size=(5000, 20)).astype(np.float32)
y = np.argmax(x[:, :3] + 0.5 * x[:, 3:6] * x[:, 6:9] + 0.3 * rng.normal(size=(5000, 3)), axis=1)
booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 6, "eta": 0.1,
                     "nthread": 1, "seed": 1, "tree_method": "hist"},
                    xgb.DMatrix(x, label=y), num_boost_round=100)
booster.save_model(os.path.join(out, "model.json"))
booster.save_model(os.path.join(out, "model.ubj"))
test = rng.normal(size=(1000, 20)).astype(np.float32)
test.tofile(os.path.join(out, "x.f32"))
booster.predict(xgb.DMatrix(test), strict_shape=True).astype(np.float32).tofile(os.path.join(out, "want.f32"))

trees, base = gen.xgb_trees(os.path.join(out, "model.json"))
a = gen.tree_attrs(trees, "class")
node = helper.make_node("TreeEnsembleClassifier", ["X"], ["label", "probabilities"], domain="ai.onnx.ml",
                        classlabels_int64s=[0, 1, 2], post_transform="SOFTMAX", base_values=[base] * 3, **a)
g = helper.make_graph([node], "xgb_multi", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 20])],
                      [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                       helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)])
m.ir_version = 8
onnx.save(m, os.path.join(out, "model.onnx"))
print(f"ml_model: {len(trees)} trees, {sum(len(t) for t in trees)} nodes")
