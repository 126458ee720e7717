"""Writers configured with a location (callbacks, record writers, loggers) are write references."""

from __future__ import annotations

import pytest
from mlcrawl.crawlers._codeanalysis import analyze_sources

CASES = [
    ("from tensorflow import keras\ncb = keras.callbacks.ModelCheckpoint('ckpt/best.keras')", "ckpt/best.keras"),
    ("from keras.callbacks import CSVLogger\nCSVLogger(filename='logs/train.csv')", "logs/train.csv"),
    ("import tensorflow as tf\ntf.keras.callbacks.TensorBoard(log_dir='tb')", "tb"),
    ("import tensorflow as tf\ntf.keras.callbacks.TensorBoard()", "logs"),
    ("import tensorflow as tf\nw = tf.io.TFRecordWriter('data/train.tfrecord')", "data/train.tfrecord"),
    ("import tensorflow as tf\ntf.summary.create_file_writer('runs/x')", "runs/x"),
    ("from lightning.pytorch.callbacks import ModelCheckpoint\nModelCheckpoint(dirpath='ckpts', monitor='v')", "ckpts"),
    ("from torch.utils.tensorboard import SummaryWriter\nSummaryWriter(log_dir='runs/exp1')", "runs/exp1"),
    ("import wandb\nwandb.init(project='p', dir='out')", "out/wandb"),
    ("import joblib\njoblib.dump(model, 'models/m.joblib')", "models/m.joblib"),
    ("import torch\ntorch.save(state, 'models/m.pt')", "models/m.pt"),
    ("import numpy as np\nfor s in ['a', 'b']:\n    np.save(f'arr/{s}.npy', x)", "arr/a.npy"),
    ("df.to_parquet('data/t.parquet')", "data/t.parquet"),
    ("model.save_pretrained('hf/model')", "hf/model"),
    ("import matplotlib.pyplot as plt\nplt.savefig('fig/loss.png')", "fig/loss.png"),
]


@pytest.mark.parametrize(("source", "path"), CASES)
def test_configured_writer_is_a_write(source: str, path: str) -> None:
    refs = analyze_sources([(0, source)]).references
    assert any(r.raw == path and r.direction == "write" for r in refs), refs
