# extract.R - write the real public data sets the predict models train on as CSV files.
# Training time only (the server never runs R). Usage: Rscript extract.R OUTDIR
#   wa_churn.csv   modeldata::wa_churn  (IBM Watson telco churn, 7043 rows)
#   chicago.csv    modeldata::Chicago   (daily CTA Clark/Lake ridership + weather, 5698 rows)
#   diamonds.csv   ggplot2::diamonds    (53940 diamonds with their prices)
# Factors are written as their labels; dates as ISO 8601; missing values as empty fields.
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) stop("usage: Rscript extract.R OUTDIR")
out <- args[1]
dir.create(out, showWarnings = FALSE, recursive = TRUE)
suppressPackageStartupMessages({
  library(modeldata)
  library(ggplot2)
})
put <- function(d, name) {
  d <- as.data.frame(d)
  for (col in names(d)) {
    if (is.factor(d[[col]])) d[[col]] <- as.character(d[[col]])
    if (inherits(d[[col]], "Date")) d[[col]] <- format(d[[col]], "%Y-%m-%d")
  }
  write.csv(d, file.path(out, name), row.names = FALSE, na = "")
}
data(wa_churn, package = "modeldata")
data(Chicago, package = "modeldata")
put(wa_churn, "wa_churn.csv")
put(Chicago, "chicago.csv")
put(ggplot2::diamonds, "diamonds.csv")
