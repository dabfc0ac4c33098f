"""A model with a custom train step, for the tests of how ktlite reads per-batch losses."""

import keras
import tensorflow as tf


class MeanStepModel(keras.Model):
    """A custom train_step written like Keras' guide: its own Mean averages the loss.

    `hidden` adds a ReLU layer of that width before the 3-class softmax; `weighted` counts
    each batch by its samples in the Mean, as Keras' own loss tracker does.
    """

    def __init__(self, weighted=False, hidden=None):
        super().__init__()
        self.hidden = None if hidden is None else keras.layers.Dense(hidden, activation="relu")
        self.dense = keras.layers.Dense(3, activation="softmax")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.weighted = weighted

    def call(self, x):
        return self.dense(x if self.hidden is None else self.hidden(x))

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = self.compute_loss(y=y, y_pred=self(x, training=True))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        if self.weighted:  # counted by samples, as Keras' own tracker is
            self.loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        else:
            self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]
