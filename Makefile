# The two commands: `make run` and `make test`. Everything else is a building block of those.
# Build trees: build/release (make run), build/asan (make test: ASan + UBSan), build/fuzz (clang).

JOBS      ?= $(shell nproc)
HOST      ?= 127.0.0.1
PORT      ?= 8080
DATA_DIR  ?= ./var
FUZZ_SECS ?= 5
PYTHON    := /usr/bin/python3

.PHONY: all run test deps deps-build build asan tsan unit e2e e2e-pg cluster-test web-test fuzz-build fuzz-smoke fuzz bench clean \
        models models-verify models-check enhance-models

all: build

deps-build:
	@bash scripts/deps.sh build

deps:
	@bash scripts/deps.sh test

build: deps-build
	@cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DMODELD_TESTS=OFF >/dev/null
	@cmake --build build/release -j$(JOBS)

run: build enhance-models
	@mkdir -p $(DATA_DIR)
	./build/release/modeld serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

asan: deps
	@cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DMODELD_SANITIZE=ON >/dev/null
	@cmake --build build/asan -j$(JOBS)

# The concurrency tests (CTest label "tsan") under ThreadSanitizer. Not part of `make test`: it
# is a second full build. libxgboost's OpenMP is not instrumented, so only tests that do not
# run XGBoost carry the label.
TSAN_TESTS := models_refcount_test jobs_test http_ws_test api_job_status_test store_predictions_test
tsan: deps
	@cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug -DMODELD_TSAN=ON >/dev/null
	@cmake --build build/tsan -j$(JOBS) --target $(TSAN_TESTS)
	cd build/tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -L tsan

# ASAN_OPTIONS: leaks are errors; UBSan stops at the first report.
export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0

unit: asan
	cd build/asan && ctest --output-on-failure -j$(JOBS) --timeout 900

e2e: asan
	@if ls tests/e2e/test_*.py >/dev/null 2>&1; then \
	  MODELD_BIN=$(CURDIR)/build/asan/modeld $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e; \
	else echo "e2e: no API tests"; fi

# The e2e files that exercise the store (jobs, schedules, predictions and feedback, keys,
# datasets and retraining), again with every server on PostgreSQL (a throwaway
# server from tests/pg/pgtmp.sh; one schema per data dir). test_store_pg.py runs in `e2e` too.
E2E_PG_TESTS := tests/e2e/test_jobs.py tests/e2e/test_schedules_callbacks.py \
                tests/e2e/test_predict_api.py tests/e2e/test_platform_auth.py tests/e2e/test_retrain.py \
                tests/e2e/test_store_pg.py tests/e2e/test_predict_log.py \
                tests/e2e/test_cluster_redis.py tests/e2e/test_refresh_tokens.py
e2e-pg: asan
	tests/pg/pgtmp.sh sh -c 'MODELD_E2E_PG="$$MODELD_TEST_PG" MODELD_BIN=$(CURDIR)/build/asan/modeld \
	  $(PYTHON) -m pytest -q -p no:cacheprovider $(E2E_PG_TESTS)'

# The whole cluster on one machine (tests/cluster/test_cluster.py): a throwaway PostgreSQL,
# redis-server, nginx on deploy/nginx/modeld.conf, two serve nodes and two workers, all on
# loopback in temporary directories, torn down at the end. About a minute on 2 cores.
cluster-test: asan
	MODELD_BIN=$(CURDIR)/build/asan/modeld $(PYTHON) -m pytest -q -p no:cacheprovider tests/cluster

web-test: asan
	@if [ -f tests/web/package.json ]; then \
	  cd tests/web && MODELD_BIN=$(CURDIR)/build/asan/modeld node --test; \
	else echo "web-test: no browser tests"; fi

fuzz-build: deps
	@CC=clang CXX=clang++ cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DMODELD_FUZZ=ON >/dev/null
	@cmake --build build/fuzz -j$(JOBS)

# A short run of every fuzz target (part of make test); `make fuzz FUZZ_SECS=600` for a long one.
fuzz-smoke: fuzz-build
	@bash scripts/fuzz.sh $(FUZZ_SECS)

fuzz: FUZZ_SECS = 300
fuzz: fuzz-build
	@bash scripts/fuzz.sh $(FUZZ_SECS)

# `build` first: the release tree (NDEBUG, -O2) is what `make run` builds; its warnings differ from Debug.
test: build unit e2e cluster-test web-test fuzz-smoke

# The shipped models (models/<name>/<version>/: artefact, modeld.json, MODEL_CARD.md), retrained
# from training/ with fixed seeds on one thread: the same bytes on every run. Not part of `test`.
MODEL_SCRIPTS := training/digits_cnn.py training/diabetes_mlp.py training/breast_cancer_xgb.py \
                 training/vectorize/classifier.py training/vectorize/quality.py \
                 training/vectorize/params_model.py \
                 training/predict/churn.py training/predict/profitability.py \
                 training/predict/revenue_leak.py training/predict/pricing.py \
                 training/predict/budget.py training/predict/demand.py \
                 training/predict/anomaly.py

models: build
	@bash scripts/deps.sh models
	@for s in $(MODEL_SCRIPTS); do $(PYTHON) $$s models || exit 1; done

# The enhancement networks (npm @upscalerjs/esrgan-*, installed by deps.sh into build/npm)
# converted to ONNX into the data dir's model repository: esrgan-<slim|medium|thick>-x<2|3|4|8>
# version 1. Third-party weights, so made here and never committed. ENHANCE_VERIFY=1 also runs
# each package's fixture through modeld and compares it with the package's own result (+-1).
enhance-models: deps-build
	@if [ -d build/npm/node_modules/@upscalerjs/esrgan-thick ]; then \
	  mkdir -p $(DATA_DIR)/models && \
	  $(PYTHON) training/enhance/convert.py --npm build/npm/node_modules --out $(DATA_DIR)/models \
	    $(if $(ENHANCE_VERIFY),--verify build/release/modeld) >/dev/null; \
	else echo "enhance-models: build/npm has no @upscalerjs/esrgan-*: enhancement unavailable"; fi

# Each shipped model through modeld's own engines: sha256 and every validation sample.
models-verify: asan
	$(PYTHON) training/verify_modeld.py build/asan/modeld models

# Retrain into build/models-check and compare byte for byte with the committed versions.
models-check: build
	@bash scripts/deps.sh models
	@rm -rf build/models-check
	@for s in $(MODEL_SCRIPTS); do $(PYTHON) $$s build/models-check || exit 1; done
	@for d in build/models-check/*/*; do diff -r "models/$${d#build/models-check/}" "$$d" || exit 1; done
	@echo "models-check: every version the scripts make is reproduced byte for byte"

bench:
	@bash scripts/deps.sh bench
	@for b in bench/*.sh; do echo "== $$b"; bash $$b || exit 1; done

clean:
	rm -rf build
