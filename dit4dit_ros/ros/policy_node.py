"""PolicyNode: what video_encoder and action_planner share. The model parameters, the policy loaded on
``configure``, the subscriptions and publishers made then (and destroyed on ``cleanup``), and the model calls on
an InferenceWorker that a timer on the node clock (sim time under use_sim_time) triggers at ``rate``."""

from __future__ import annotations

from dit4dit_ros.inference.loading import load_policy, model_id
from dit4dit_ros.ros.inference_worker import InferenceWorker
from dit4dit_ros.ros.managed import SUCCESS, ManagedNode
from dit4dit_ros.ros.params import declare


class PolicyNode(ManagedNode):
    job_description = "inference"  # what a failed worker run was doing, for the error line

    def __init__(self, node_name: str, *, noise: str, rate: float, rate_description: str, max_rate: float,
                 **kwargs):
        super().__init__(node_name, **kwargs)
        self._checkpoint = declare(self, "checkpoint", "", "Policy checkpoint: directory or hub id "
                                   "(empty = an untrained preset, for wiring tests)", read_only=True)
        self._preset = declare(self, "preset", "tiny", "Model preset when no checkpoint is given", read_only=True)
        self._seed = declare(self, "seed", 0, f"Seed of the untrained preset's weights and of the {noise} noise",
                             low=0, high=2**31 - 1, read_only=True)
        self._device = declare(self, "device", "cpu", "torch device (cpu, cuda, cuda:1, ...)", read_only=True)
        self._threads = declare(self, "torch_threads", 1, "CPU threads for torch (0 = torch's default)",
                                low=0, high=256, read_only=True)
        self._rate = declare(self, "rate", rate, f"{rate_description} per second (node clock)",
                             low=0.1, high=max_rate)
        self._model_id = model_id(self._checkpoint, self._preset, self._seed)
        self._runtime = None
        self._worker: InferenceWorker | None = None
        self._timer = None
        self._configured: list[tuple[object, object]] = []  # (entity, its destroy method)
        self._errors = 0
        self._last_error = ""

    # -- configure helpers ----------------------------------------------------------------------------------
    def load_policy(self):
        """The policy, or None after one clear error line (missing/corrupt checkpoint, bad device)."""
        try:
            return load_policy(self._checkpoint, self._preset, seed=self._seed, device=self._device,
                               threads=self._threads)
        except Exception as error:  # noqa: BLE001
            self.get_logger().error(f"cannot load the policy: {error}")
            return None

    def subscribe(self, msg_type, topic: str, callback, qos):
        subscription = self.create_subscription(msg_type, topic, callback, qos, callback_group=self.input_group)
        self._configured.append((subscription, self.destroy_subscription))
        return subscription

    def lifecycle_publisher(self, msg_type, topic: str, qos):
        publisher = self.create_lifecycle_publisher(msg_type, topic, qos)
        self._configured.append((publisher, self.destroy_lifecycle_publisher))
        return publisher

    def start_worker(self, job) -> None:
        self._worker = InferenceWorker(self.get_name(), job, self._on_worker_error)
        self._timer = self.create_timer(1.0 / self._rate, self._worker.trigger, callback_group=self.timer_group)

    # -- lifecycle ------------------------------------------------------------------------------------------
    def on_cleanup(self, state):
        self._teardown()
        return SUCCESS

    def on_shutdown(self, state):
        self._teardown()
        return SUCCESS

    def destroy_node(self):
        self._teardown()
        return super().destroy_node()

    def _teardown(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self.destroy_timer(self._timer)
            self._worker = self._timer = None
        for entity, destroy in reversed(self._configured):
            destroy(entity)
        self._configured.clear()
        self._runtime = None

    # -- errors ---------------------------------------------------------------------------------------------
    def _on_worker_error(self, error: Exception) -> None:
        if not self.context.ok():  # shutting down: a publish racing the context's end is not an error
            return
        self._errors += 1
        self._last_error = f"{self.job_description} failed: {error}"
        self.get_logger().error(self._last_error, throttle_duration_sec=2.0)

    def worker_skipped(self) -> int:
        return self._worker.skipped if self._worker else 0
