"""Seconds per training epoch of the covariance-heatmap VAE: the original study's backbone
against the light backbone of ``helpers.heatmaps``, timed in the same run on the 9,500
training heatmaps with batch 64 (the study's settings). Writes
build/bench/heatmap_backbone.json with ``time_ratio`` = original / light.
"""

import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
from helpers.infra import config  # noqa: E402

config.quiet_tensorflow()
import keras  # noqa: E402

from helpers.data import heatmaps  # noqa: E402
from helpers.infra.config import build_dir  # noqa: E402
from helpers.infra.files import write_json_atomic  # noqa: E402
from helpers.models import autoencoders, backbones  # noqa: E402

BATCH_SIZE, TIMED_EPOCHS = 64, 3


class EpochTimer(keras.callbacks.Callback):
    """Wall time of every epoch."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def seconds_per_epoch(backbone, x):
    """Median epoch time after one warm-up epoch (which also traces the graph)."""
    keras.utils.set_random_seed(0)
    vae = autoencoders.VAE(*backbone(3, variational=True), seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    timer = EpochTimer()
    vae.fit(x, epochs=1 + TIMED_EPOCHS, batch_size=BATCH_SIZE, verbose=0, callbacks=[timer])
    timed = sorted(timer.seconds[1:])
    return timed[len(timed) // 2]


def main():
    x_train = heatmaps.load_heatmaps().x_train
    source = seconds_per_epoch(backbones.source_backbone, x_train)
    light = seconds_per_epoch(backbones.light_backbone, x_train)
    result = {"source_seconds_per_epoch": round(source, 3),
              "light_seconds_per_epoch": round(light, 3),
              "time_ratio": round(source / light, 2),
              "n_train": len(x_train), "batch_size": BATCH_SIZE, "cpu_count": os.cpu_count()}
    print(f"original backbone {source:.2f} s/epoch, light backbone {light:.2f} s/epoch: "
          f"ratio {result['time_ratio']:.1f} (target >= 5)")
    path = build_dir("bench") / "heatmap_backbone.json"
    write_json_atomic(path, result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
