"""synth.py - the documented synthetic generators for the predict models that have no public
data: client profitability, revenue leakage, marketing channel response and anomalies in daily
business metrics. Each function is the data-generating process written out (README.md repeats
it in prose); each takes a seed and is deterministic (numpy RandomState).

All return (columns: {name: np.ndarray}, extra) where categories are label arrays.
"""
import numpy as np

INDUSTRIES = ["retail", "manufacturing", "finance", "healthcare", "technology", "public"]
REGIONS = ["north", "south", "east", "west"]
CONTRACTS = ["fixed_fee", "time_and_materials", "retainer"]
TIERS = ["bronze", "silver", "gold", "platinum"]
LEAK_PATTERNS = ["none", "unbilled_hours", "discount_beyond_policy", "expired_rate",
                 "duplicate_credit"]
CHANNELS = ["search", "social", "display", "video", "email"]
# True response curves of the marketing generator: return_c(x) = A * (1 - exp(-x / S)), x in k EUR
# per week, A in k EUR of gross margin. The fitted parameters in the budget manifest estimate them.
TRUE_CURVES = {"search": (120.0, 40.0), "social": (80.0, 30.0), "display": (40.0, 20.0),
               "video": (90.0, 80.0), "email": (30.0, 5.0)}
SPEND_MEDIAN = {"search": 35.0, "social": 25.0, "display": 15.0, "video": 50.0, "email": 4.0}


def profitability(n, seed):
    """Client profitability (one row per client-year of a services firm).

    industry ~ uniform over INDUSTRIES; region ~ uniform; contract ~ (0.35, 0.45, 0.20)
    annual_revenue_k ~ exp(N(5.0, 0.8)) clipped to [5, 5000] (k EUR)
    hourly_rate = 70 + premium(industry) + N(0, 15), clipped [40, 250] (EUR/h);
        premium: finance 45, technology 30, healthcare 20, manufacturing 10, retail 0, public -10
    discount_pct ~ 40 * Beta(2, 10) (+5 for public clients), clipped [0, 50]
    staff_seniority_years ~ U(1, 15); cost_rate = 38 + 3.2 * seniority (EUR/h)
    utilisation (billable share of logged hours) ~ 0.92 - 0.15*Beta(2, 5) - 0.08*[fixed_fee]
    scope_changes ~ Poisson(1 + 2*[fixed_fee]); tickets_per_month ~ Poisson(1.5 + 2*[public]
        + 0.01 * revenue_k^0.5 * 10)
    payment_delay_days ~ Gamma(2, 12) (+15 for public clients); tenure_months ~ 1 + Exp(30),
        clipped to 240
    hours logged = revenue * 1000 / hourly_rate / utilisation
    cost = hours * cost_rate * (1 + 0.06 * scope_changes * [fixed_fee])
           + tickets * 12 * 0.15 k EUR + revenue * 0.08 * delay / 365 + 0.10 * revenue (overhead)
           - 0.02 * revenue * min(tenure, 60) / 60   (long relationships need less sales effort)
    net revenue = revenue * (1 - discount/100)
    margin_pct = 100 * (net revenue - cost) / net revenue + N(0, 3), clipped to [-100, 80]
    """
    r = np.random.RandomState(seed)
    ind = r.randint(0, len(INDUSTRIES), n)
    reg = r.randint(0, len(REGIONS), n)
    con = r.choice(3, n, p=[0.35, 0.45, 0.20])
    fixed, public = (con == 0).astype(float), (ind == 5).astype(float)
    rev = np.clip(np.exp(r.normal(5.0, 0.8, n)), 5, 5000)
    premium = np.array([0, 10, 45, 20, 30, -10], dtype=float)[ind]
    rate = np.clip(70 + premium + r.normal(0, 15, n), 40, 250)
    disc = np.clip(40 * r.beta(2, 10, n) + 5 * public, 0, 50)
    senior = r.uniform(1, 15, n)
    util = 0.92 - 0.15 * r.beta(2, 5, n) - 0.08 * fixed
    scope = r.poisson(1 + 2 * fixed)
    tickets = r.poisson(1.5 + 2 * public + 0.1 * np.sqrt(rev))
    delay = r.gamma(2, 12, n) + 15 * public
    tenure = np.clip(1 + r.exponential(30, n), 1, 240)
    hours = rev * 1000 / rate / util
    cost_k = (hours * (38 + 3.2 * senior) * (1 + 0.06 * scope * fixed) / 1000
              + tickets * 12 * 0.15 + rev * 0.08 * delay / 365 + 0.10 * rev
              - 0.02 * rev * np.minimum(tenure, 60) / 60)
    net = rev * (1 - disc / 100)
    margin = np.clip(100 * (net - cost_k) / net + r.normal(0, 3, n), -100, 80)
    cols = {
        "industry": np.array(INDUSTRIES)[ind], "region": np.array(REGIONS)[reg],
        "contract_type": np.array(CONTRACTS)[con], "annual_revenue_k": np.round(rev, 1),
        "hourly_rate": np.round(rate, 2), "discount_pct": np.round(disc, 2),
        "staff_seniority_years": np.round(senior, 1), "utilisation": np.round(util, 3),
        "scope_changes": scope.astype(float), "tickets_per_month": tickets.astype(float),
        "payment_delay_days": np.round(delay, 1), "tenure_months": np.round(tenure),
    }
    return cols, {"margin_pct": margin}


def revenue_leak(n, seed):
    """Billing + contract records (one row per invoice line of a client for a month), with
    injected leak patterns. Every record first gets a clean history:

    tier ~ (bronze .4, silver .3, gold .2, platinum .1); policy_max_discount_pct = 5, 10, 15, 20
    list_rate (current contract rate card, EUR/h) ~ U(80, 220); rate_card_age_days ~ U(0, 360)
    billed_rate = list_rate; hours_logged ~ Gamma(4, 10) (timesheets);
    hours_billed = hours_logged + N(0, 0.25) rounding, >= 0
    discount_pct ~ U(0, policy max); credit_count ~ Poisson(0.3);
    credit_amount = credit_count * U(50, 400) (EUR); days_since_same_credit = 999 (no earlier
    credit of the same amount) or, for 8% of records with credits, 30 +- 2 (a legitimate monthly
    recurring credit)
    Legitimate look-alikes: 4% approved write-offs (hours_billed = hours_logged * U(0.7, 0.95),
    writeoff_approved = 1), 2% approved discount exceptions (discount = policy + U(1, 10),
    exception_approved = 1), 3% grandfathered rates (rate_card_age_days ~ U(366, 900),
    billed_rate = list_rate / U(1.03, 1.12)). Each approval flag is recorded (1) only with
    probability 0.6: missing paperwork is the realistic ambiguity.
    Then each record that is not a look-alike gets one leak with probability 0.14: each of the
    four classes 1..4 with probability 0.035, exclusive:
      unbilled_hours:          hours_billed = hours_logged * U(0.55, 0.9)
                               leaked = (hours_logged - hours_billed) * list_rate
      discount_beyond_policy:  discount = policy + U(2, 18); leaked = (discount - policy)% of
                               hours_billed * billed_rate
      expired_rate:            rate_card_age_days ~ U(366, 900), billed_rate = list_rate /
                               U(1.03, 1.15); leaked = (list_rate - billed_rate) * hours_billed
      duplicate_credit:        one credit c ~ U(50, 400) booked twice (credit_count = 2,
                               credit_amount = 2c, replacing the record's credits),
                               days_since_same_credit ~ U(0, 10); leaked = c
    invoice_amount = hours_billed * billed_rate * (1 - discount/100) - credit_amount
    """
    r = np.random.RandomState(seed)
    tier = r.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])
    policy = np.array([5.0, 10.0, 15.0, 20.0])[tier]
    list_rate = r.uniform(80, 220, n)
    age = r.uniform(0, 360, n)
    billed_rate = list_rate.copy()
    logged = r.gamma(4, 10, n)
    billed = np.maximum(0, logged + r.normal(0, 0.25, n))
    disc = r.uniform(0, 1, n) * policy
    ccount = r.poisson(0.3, n).astype(float)
    camount = ccount * r.uniform(50, 400, n)
    since = np.full(n, 999.0)
    recurring = (ccount > 0) & (r.uniform(size=n) < 0.08)
    since[recurring] = 30 + r.uniform(-2, 2, recurring.sum())
    writeoff = np.zeros(n)
    exception = np.zeros(n)
    u = r.uniform(size=n)
    wo = u < 0.04
    billed[wo] = logged[wo] * r.uniform(0.7, 0.95, wo.sum())
    ex = (u >= 0.04) & (u < 0.06)
    disc[ex] = policy[ex] + r.uniform(1, 10, ex.sum())
    gf = (u >= 0.06) & (u < 0.09)
    age[gf] = r.uniform(366, 900, gf.sum())
    billed_rate[gf] = list_rate[gf] / r.uniform(1.03, 1.12, gf.sum())
    papers = r.uniform(size=n) < 0.6
    writeoff[wo & papers] = 1
    exception[ex & papers] = 1
    # leaks, on records that are not look-alikes
    label = np.zeros(n, dtype=int)
    leaked = np.zeros(n)
    v = r.uniform(size=n)
    clean = u >= 0.09
    for k in range(1, 5):
        m = clean & (v >= 0.035 * (k - 1)) & (v < 0.035 * k)
        label[m] = k
        c = int(m.sum())
        if k == 1:
            billed[m] = logged[m] * r.uniform(0.55, 0.9, c)
            leaked[m] = (logged[m] - billed[m]) * list_rate[m]
        elif k == 2:
            disc[m] = policy[m] + r.uniform(2, 18, c)
            leaked[m] = (disc[m] - policy[m]) / 100 * billed[m] * billed_rate[m]
        elif k == 3:
            age[m] = r.uniform(366, 900, c)
            billed_rate[m] = list_rate[m] / r.uniform(1.03, 1.15, c)
            leaked[m] = (list_rate[m] - billed_rate[m]) * billed[m]
        else:
            extra = r.uniform(50, 400, c)
            ccount[m] = 2
            camount[m] = 2 * extra
            since[m] = r.uniform(0, 10, c)
            leaked[m] = extra
    invoice = billed * billed_rate * (1 - disc / 100) - camount
    cols = {
        "customer_tier": np.array(TIERS)[tier], "policy_max_discount_pct": policy,
        "list_rate": np.round(list_rate, 2), "billed_rate": np.round(billed_rate, 2),
        "rate_card_age_days": np.round(age), "hours_logged": np.round(logged, 2),
        "hours_billed": np.round(billed, 2), "writeoff_approved": writeoff,
        "discount_pct": np.round(disc, 2), "exception_approved": exception,
        "credit_count": ccount, "credit_amount": np.round(camount, 2),
        "days_since_same_credit": np.round(since, 1), "invoice_amount": np.round(invoice, 2),
    }
    return cols, {"label": label, "leaked_amount": leaked}


def marketing(weeks, regions, seed):
    """Weekly marketing spend and return for `regions` independent regions over `weeks` weeks.

    spend_c ~ SPEND_MEDIAN[c] * exp(N(0, 0.6)) (planned variation: the experiments that make the
    curves identifiable), and 5% of weeks a channel is paused (spend 0); k EUR per week.
    week_sin, week_cos = sin, cos(2 pi week / 52)
    return = 60 + 12 * week_sin + 5 * week_cos + sum_c A_c * (1 - exp(-spend_c / S_c))
             + N(0, 6)   (k EUR gross margin; A_c, S_c in TRUE_CURVES)
    """
    r = np.random.RandomState(seed)
    n = weeks * regions
    week = np.tile(np.arange(weeks), regions)
    ws, wc = np.sin(2 * np.pi * week / 52), np.cos(2 * np.pi * week / 52)
    cols, ret = {}, 60 + 12 * ws + 5 * wc + r.normal(0, 6, n)
    for c in CHANNELS:
        s = SPEND_MEDIAN[c] * np.exp(r.normal(0, 0.6, n))
        s[r.uniform(size=n) < 0.05] = 0.0
        s = np.round(s, 2)
        a, sc = TRUE_CURVES[c]
        ret += a * (1 - np.exp(-s / sc))
        cols[c] = s
    cols["week_sin"], cols["week_cos"] = ws, wc
    return cols, {"return": ret, "week": week}


def business_metrics(days, seed, rate=0.03):
    """Daily metrics of an online shop, `days` days, with anomalies injected into `rate` of days.

    dow effect f = (1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.2)[day_of_week] (Monday = 0)
    sessions ~ 20000 * f * exp(N(0, 0.08)); conversion_rate ~ 0.025 * exp(N(0, 0.07))
    orders = Poisson(sessions * conversion_rate); avg_order_value ~ 62 * exp(N(0, 0.05))
    revenue = orders * avg_order_value; refund_rate ~ Beta(4, 96); discount_share ~ Beta(6, 34)
    new_customer_share ~ Beta(30, 70)
    Anomalies (each anomalous day gets one kind, uniformly):
      revenue_spike:   avg_order_value *= U(2, 4) (revenue follows)
      orders_drop:     conversion_rate *= U(0.15, 0.5) (orders and revenue follow)
      refund_surge:    refund_rate *= U(3, 6)
      tracking_outage: sessions *= U(0.05, 0.3) (orders unchanged: conversion looks absurd)
      discount_abuse:  discount_share = U(0.4, 0.7) and new_customer_share = U(0.6, 0.9)
    The rows fed to the model are the ratios and rates of the day: sessions, orders, revenue,
    avg_order_value, conversion_rate (= orders / sessions), refund_rate, discount_share,
    new_customer_share, day_of_week.
    """
    r = np.random.RandomState(seed)
    dow = np.arange(days) % 7
    f = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.2])[dow]
    sessions = 20000 * f * np.exp(r.normal(0, 0.08, days))
    conv = 0.025 * np.exp(r.normal(0, 0.07, days))
    aov = 62 * np.exp(r.normal(0, 0.05, days))
    refund = r.beta(4, 96, days)
    dshare = r.beta(6, 34, days)
    newc = r.beta(30, 70, days)
    kind = np.zeros(days, dtype=int)
    hit = r.uniform(size=days) < rate
    kind[hit] = 1 + r.randint(0, 5, hit.sum())
    m = kind == 1
    aov[m] *= r.uniform(2, 4, m.sum())
    m = kind == 2
    conv[m] *= r.uniform(0.15, 0.5, m.sum())
    m = kind == 3
    refund[m] = np.minimum(0.9, refund[m] * r.uniform(3, 6, m.sum()))
    orders = r.poisson(sessions * conv).astype(float)
    m = kind == 4
    sessions[m] *= r.uniform(0.05, 0.3, m.sum())
    m = kind == 5
    dshare[m] = r.uniform(0.4, 0.7, m.sum())
    newc[m] = r.uniform(0.6, 0.9, m.sum())
    revenue = orders * aov
    cols = {
        "sessions": np.round(sessions), "orders": orders, "revenue": np.round(revenue, 2),
        "avg_order_value": np.round(revenue / np.maximum(orders, 1), 2),
        "conversion_rate": np.round(orders / np.maximum(np.round(sessions), 1), 5),
        "refund_rate": np.round(refund, 4), "discount_share": np.round(dshare, 4),
        "new_customer_share": np.round(newc, 4), "day_of_week": dow.astype(float),
    }
    kinds = ["normal", "revenue_spike", "orders_drop", "refund_surge", "tracking_outage",
             "discount_abuse"]
    return cols, {"anomaly": (kind > 0).astype(int), "kind": np.array(kinds)[kind]}
