"""ManagedNode: the base of every node that holds a model or drives motors (camera_ingest, video_encoder,
action_planner, controller_bridge).

* It is a lifecycle (managed) node: models load in ``on_configure``, outputs flow only while active, and
  ``ros2 lifecycle set`` (or a lifecycle manager such as nav2's) can drive it. With ``autostart`` true (the
  default, as no lifecycle manager ships with the graph) it configures and activates itself once created.
* It publishes /diagnostics once per ``diagnostics_period`` from ``diagnostics()``, which subclasses fill with
  rates, latencies, queue depths and drop counters.
* Callback groups: subclasses put subscriptions in ``input_group`` and timers in ``timer_group``. The
  lifecycle and parameter services stay in the default group: sharing one mutually exclusive group with a
  100 Hz timer and sim-time callbacks starved them (``get_state`` went unanswered under load).
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from lifecycle_msgs.msg import State
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from dit4dit_ros.ros.params import declare

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class ManagedNode(LifecycleNode):
    hardware_id = "dit4dit_ros"

    def __init__(self, node_name: str, **kwargs):
        super().__init__(node_name, **kwargs)
        self.input_group = MutuallyExclusiveCallbackGroup()
        self.timer_group = MutuallyExclusiveCallbackGroup()
        self._autostart = declare(self, "autostart", True,
                                  "Configure and activate on start-up (false: wait for a lifecycle manager)",
                                  read_only=True)
        period = declare(self, "diagnostics_period", 1.0, "Seconds between /diagnostics messages",
                         low=0.05, high=60.0)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(period, self._publish_diagnostics, callback_group=MutuallyExclusiveCallbackGroup())

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> bool:
        """Autostart: configure, then activate; True when the node ends up active (or autostart is off)."""
        if not self._autostart:
            self.get_logger().info("waiting to be configured and activated (autostart is false)")
            return True
        for trigger, name in ((self.trigger_configure, "configure"), (self.trigger_activate, "activate")):
            if trigger() != SUCCESS:
                self.get_logger().fatal(f"autostart: {name} failed")
                return False
        return True

    @property
    def is_active(self) -> bool:
        return self._state_machine.current_state[0] == State.PRIMARY_STATE_ACTIVE

    # -- diagnostics --------------------------------------------------------------------------------------
    def diagnostics(self) -> tuple[int, str, dict[str, object]]:
        """(level, message, key values); subclasses report what a user needs to see this node is healthy."""
        return OK, "ok", {}

    def _publish_diagnostics(self) -> None:
        try:
            level, message, values = self.diagnostics()
        except Exception as error:  # noqa: BLE001 - a bug in reporting must not take the node down
            level, message, values = ERROR, f"diagnostics failed: {error!r}", {}
        state = self._state_machine.current_state[1]
        status = DiagnosticStatus(level=level, name=self.get_fully_qualified_name(), message=message,
                                  hardware_id=self.hardware_id,
                                  values=[KeyValue(key="lifecycle_state", value=state)]
                                  + [KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)
