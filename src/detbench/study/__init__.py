"""Many models on one list: the ablation study, one study per folder."""
