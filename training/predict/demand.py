#!/usr/bin/python3
"""demand.py - train models/demand: daily ridership forecasts for the next H days (H <= 14) with
prediction intervals, from modeldata::Chicago (CTA Clark/Lake station entries, thousands per day,
2001-01-22 .. 2016-08-28, with Chicago weather; real and public; extracted by extract.R).

One XGBoost regression of day t's ridership relative to the mean of the 7 days before (mean7),
on the lags t-1, t-2, t-7, t-14 relative to mean7, mean7 itself, the calendar (day of week,
month, US federal holiday) and the weather (mean temperature, precipitation, snow). Ratios, not
levels: trees cannot extrapolate, and ridership in 2015-2016 is above anything in the training
years; forecast = mean7 * model output. The server forecasts recursively: day t+1 from the history, then t+2 using the forecast
of t+1 as its lag, and so on (postprocessing.forecast). Weather is optional: 25% of training
rows have it hidden (NaN), so the trees learned what to do without a weather forecast.
Intervals: the quantiles of the forecast errors (actual - forecast) per horizon 1..14, measured
by running the same recursion from every origin of the validation year (2014).

Split by time: train 2001-02-05 .. 2013-12-31, validation 2014, test 2015-01-01 .. 2016-08-28.
Metrics on the test period: MAE and MAPE at horizons 1, 7 and 14, and the coverage of the 80%
and 90% intervals over all horizons.

Usage: demand.py OUTROOT   (writes OUTROOT/demand/1/...)
"""
import datetime as dt
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcommon as pc  # noqa: E402
import postprocess  # noqa: E402

NAME, VERSION, SEED, H = "demand", "1", 20261216, 14
PARAMS = {"objective": "reg:squarederror", "max_depth": 5, "eta": 0.1, "subsample": 0.8,
          "colsample_bytree": 0.9, "min_child_weight": 3, "seed": SEED}
ROUNDS = 150
LAGS = [1, 2, 7, 14]
DOW = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
WEATHER = ["temp", "percip", "weather_snow"]
QS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]


def columns():
    c = pc.col
    return [
        c("lag1_ratio", "number", "ratio", "ridership the day before / mean7", 0, 100),
        c("lag2_ratio", "number", "ratio", "ridership two days before / mean7", 0, 100),
        c("lag7_ratio", "number", "ratio", "ridership seven days before / mean7", 0, 100),
        c("lag14_ratio", "number", "ratio", "ridership fourteen days before / mean7", 0, 100),
        c("mean7", "number", "thousand entries", "mean ridership of the 7 days before", 0.001,
          1000),
        c("day_of_week", "category", None, "day of the week of the forecast day", values=DOW),
        c("month", "integer", "1..12", "month of the forecast day", 1, 12),
        c("holiday", "integer", "0 or 1",
          "1 on a US federal holiday (postprocessing.forecast.holidays)", 0, 1),
        c("temp", "number", "degF", "mean temperature of the day", -60, 130, required=False),
        c("percip", "number", "inch", "precipitation of the day", 0, 20, required=False),
        c("weather_snow", "number", "share 0..1", "share of the day's weather reports with snow",
          0, 1, required=False),
    ]


def calendar(dates):
    hol = set()
    for y in sorted({d.year for d in dates}):
        hol |= postprocess.us_holidays(y)
    return (np.array([d.weekday() for d in dates], dtype=float),
            np.array([d.month for d in dates], dtype=float),
            np.array([1.0 if d in hol else 0.0 for d in dates]))


def rows_for(t, lag, cal, wx):
    """Model rows for days t (array) with lag(k) giving the value of day t - k (array)."""
    l = {k: lag(k) for k in range(1, 15)}
    m7 = np.mean([l[k] for k in range(1, 8)], axis=0)
    return np.column_stack([l[1] / m7, l[2] / m7, l[7] / m7, l[14] / m7, m7, cal[0][t],
                            cal[1][t], cal[2][t]] + [w[t] for w in wx])


def recursive(served, series, origins, cal, wx):
    """Forecasts P[i, h-1] of day origins[i] + h - 1 from the actual values before origins[i]."""
    o = np.asarray(origins)
    P = np.zeros((len(o), H))
    for h in range(1, H + 1):
        t = o + h - 1

        def lag(k, t=t, h=h):
            return series[t - k] if h - 1 - k < 0 else P[:, h - 1 - k]
        rows = rows_for(t, lag, cal, wx)
        P[:, h - 1] = rows[:, 4] * pc.predict(served, rows)
    return P


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "models"
    cols = columns()
    d = pc.read_csv("chicago.csv")
    dates = [dt.date.fromisoformat(s) for s in d["date"]]
    assert all((b - a).days == 1 for a, b in zip(dates, dates[1:])), "Chicago has a gap"
    series = pc.num(d["ridership"])
    cal = calendar(dates)
    wx = [pc.num(d[w]) for w in WEATHER]
    n = len(series)
    t_all = np.arange(14, n)
    x = rows_for(t_all, lambda k: series[t_all - k], cal, wx)
    y = series[t_all]
    year = np.array([dates[t].year for t in t_all])
    itr = np.where(year <= 2013)[0]
    xtr = x[itr].copy()
    hide = np.random.RandomState(SEED).uniform(size=len(itr)) < 0.25
    xtr[np.ix_(hide, [8, 9, 10])] = np.nan
    booster = pc.train_xgb(PARAMS, ROUNDS, xtr, y[itr] / x[itr, 4])
    out = pc.common.model_dir(root, NAME, VERSION)
    path, served = pc.save_and_reload(booster, out)

    def origins(y0, y1):
        return [t for t in range(14, n - H + 1) if y0 <= dates[t].year <= y1 and
                dates[t + H - 1].year <= y1]
    ov, ot = origins(2014, 2014), origins(2015, 2016)
    err_v = np.array([series[np.asarray(ov) + h] for h in range(H)]).T - \
        recursive(served, series, ov, cal, wx)
    rq = {str(q): [pc._r(v) for v in np.quantile(err_v, q, axis=0)] for q in QS}
    actual_t = np.array([series[np.asarray(ot) + h] for h in range(H)]).T
    P = recursive(served, series, ot, cal, wx)
    metrics = {}
    for h in (1, 7, 14):
        m = pc.regression_metrics(actual_t[:, h - 1], P[:, h - 1])
        metrics[f"mae_h{h}"], metrics[f"mape_h{h}"] = m["mae"], m["mape"]
    e = actual_t - P
    lo80, hi80 = np.array(rq["0.1"]), np.array(rq["0.9"])
    lo90, hi90 = np.array(rq["0.05"]), np.array(rq["0.95"])
    metrics["coverage_80"] = round(float(np.mean((e >= lo80) & (e <= hi80))), 4)
    metrics["coverage_90"] = round(float(np.mean((e >= lo90) & (e <= hi90))), 4)
    metrics.update({"test_origins": len(ot), "validation_origins": len(ov),
                    "train_samples": int(len(itr))})
    post = {
        "task": "forecast",
        "output": "ratio: one day's ridership / mean7 of its row (forecast = mean7 * output; "
                  "ridership in thousand entries, Clark/Lake station)",
        "unit": "thousand entries/day",
        "max_horizon": H,
        "forecast": {
            "input": "history: the last >= 14 daily values before the first forecast day, with "
                     "the date of the last one (consecutive days, oldest first); horizon H "
                     "(1..max_horizon); per forecast day optional weather {temp, percip, "
                     "weather_snow} and an optional holiday override",
            "recursion": "for h = 1..H, day t = last date + h: lag_k = the value of day t - k "
                         "(the history, or the forecast already made for that day), mean7 = "
                         "mean(lag_1..lag_7), lagK_ratio = lag_K / mean7 (K = 1, 2, 7, 14), "
                         "day_of_week / month / holiday from the date, weather from the caller "
                         "or NaN; forecast_h = mean7 * model(row) (mean7 > 0: a history "
                         "whose last 7 values are all 0 is a 400 on history)",
            "holidays": "US federal holidays on their calendar dates (no weekend shift): Jan 1, "
                        "3rd Monday of January, 3rd Monday of February, last Monday of May, "
                        "Jul 4, 1st Monday of September, 2nd Monday of October, Nov 11, 4th "
                        "Thursday of November, Dec 25",
            "interval": "lower_h = forecast_h + residual_quantiles[q_lo][h-1], upper_h = "
                        "forecast_h + residual_quantiles[q_hi][h-1]; default 80% "
                        "(q 0.1 and 0.9), 90% uses 0.05 and 0.95",
        },
        "residual_quantiles": rq,
        "residual_rule": "actual - forecast of the recursion from every origin of the validation "
                         "year 2014, per horizon (index h-1); weather given as observed",
        "explanation": {
            "method": "xgboost_treeshap",
            "how": "XGBoost pred_contribs on one day's row (thousand entries per column)",
            "reasons": "the top_k columns by |contribution|",
            "mode": "abs",
            "top_k": 3,
        },
    }
    pre = {"training_distribution": pc.distribution(cols, x[itr])}
    samp = pc.samples(served, x, pc.complete_rows(x, np.where(year >= 2015)[0], 3), "ratio")
    card = {
        "data": "modeldata::Chicago (R package modeldata, MIT; City of Chicago open data and "
                "weather): daily entries at the CTA Clark/Lake L station, 2001-01-22 .. "
                "2016-08-28, with daily weather. Time split: train to 2013, validation 2014 "
                "(interval calibration), test 2015-2016.",
        "intended_use": "Forecast the next days' demand (here: station entries) with intervals, "
                        "for staffing and capacity planning.",
        "limits": "One station; ends in 2016 (later shocks, e.g. 2020, are unknown to it). "
                  "Sports events and service changes are not features. Intervals come from "
                  "2014's errors with observed weather: without weather, or far from 2014's "
                  "conditions, they are too narrow.",
    }
    doc = pc.manifest(NAME, VERSION, "Daily demand forecast (Chicago L ridership) for the next "
                      "14 days with prediction intervals; recursive XGBoost with lag, calendar "
                      "and weather features.", len(cols), "ratio", 1,
                      "The day's ridership / mean7 (the row's column 4).", cols, pre, post, samp, metrics,
                      card, digest=pc.common.sha256(path),
                      training=pc.not_retrainable(
                          "the rows are built from a daily series (lags over a rolling mean) "
                          "and the prediction intervals from a backtest over it: a new version "
                          "needs the series, which training/predict/demand.py rebuilds"))
    pc.write(out, doc, [("Training", f"xgboost, {ROUNDS} rounds, parameters {PARAMS}, one "
                                     "thread; weather hidden on 25% of training rows.")])
    print(f"{NAME}: {metrics}", file=sys.stderr)


if __name__ == "__main__":
    main()
