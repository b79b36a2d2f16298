"""Dataset cards, split lists and episode locks (data, installed as `fsar_datasets`)."""
