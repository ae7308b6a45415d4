"""The decision the detector serves (features, online model, champion, host calibration, combined
rule), in the core so the detector, the backtest and the promotion gate run the same code."""
