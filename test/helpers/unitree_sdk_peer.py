"""Unitree's own Python SDK (unitree_sdk2py, CycloneDDS) as a DDS peer of the ROS graph, for
test/test_unitree_crc.py: it subscribes to rt/lowcmd and prints every LowCmd it receives as one JSON line,
with the CRC the SDK computes for it, and publishes a LowState on rt/lowstate with the SDK's CRC.

    python unitree_sdk_peer.py DOMAIN_ID SECONDS

NETWORK SAFETY: the SDK's ChannelFactoryInitialize(domain, "lo") builds its own CycloneDDS XML (the named
interface, multicast "default", a trace file in /tmp). Its config template is replaced here by LOOPBACK_XML
before the factory is initialised: the loopback address only, multicast off, the one unicast peer
127.0.0.1. CYCLONEDDS_URI is set to the same for any other participant. CycloneDDS rejects an unknown
element, so a mistyped setting cannot be silently ignored.
"""

import json
import os
import sys
import time

LOOPBACK_XML = (
    '<CycloneDDS><Domain Id="any"><General><Interfaces><NetworkInterface address="127.0.0.1"/></Interfaces>'
    "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
    '<Peers><Peer address="127.0.0.1"/></Peers></Discovery></Domain></CycloneDDS>'
)


def main() -> int:
    domain, seconds = int(sys.argv[1]), float(sys.argv[2])
    os.environ["CYCLONEDDS_URI"] = LOOPBACK_XML

    import unitree_sdk2py.core.channel as channel

    channel.ChannelConfigHasInterface = LOOPBACK_XML  # read by ChannelFactory.Init at call time
    from unitree_sdk2py.core.channel import ChannelFactoryInitialize, ChannelPublisher, ChannelSubscriber
    from unitree_sdk2py.idl.default import unitree_hg_msg_dds__LowState_
    from unitree_sdk2py.idl.unitree_hg.msg.dds_ import LowCmd_, LowState_
    from unitree_sdk2py.utils.crc import CRC

    ChannelFactoryInitialize(domain, "lo")
    crc = CRC()

    def on_lowcmd(msg: LowCmd_) -> None:
        print(json.dumps({"mode_pr": msg.mode_pr, "mode_machine": msg.mode_machine,
                          "mode": [m.mode for m in msg.motor_cmd], "q": [m.q for m in msg.motor_cmd],
                          "kp": [m.kp for m in msg.motor_cmd], "reserve": list(msg.reserve),
                          "crc": msg.crc, "sdk_crc": crc.Crc(msg)}), flush=True)

    subscriber = ChannelSubscriber("rt/lowcmd", LowCmd_)
    subscriber.Init(on_lowcmd, 10)
    publisher = ChannelPublisher("rt/lowstate", LowState_)
    publisher.Init()

    state = unitree_hg_msg_dds__LowState_()
    state.mode_machine = 5
    state.imu_state.quaternion = [1.0, 0.0, 0.0, 0.0]
    for i, motor in enumerate(state.motor_state):
        motor.mode, motor.q, motor.temperature = 1, 0.01 * i, [30 + i, 31 + i]
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    tick = 0
    while time.monotonic() < deadline:
        tick += 1
        state.tick = tick
        state.crc = crc.Crc(state)
        publisher.Write(state)
        time.sleep(0.02)
    return 0


if __name__ == "__main__":
    sys.exit(main())
