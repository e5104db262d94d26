"""The plain-Python brain of the controller bridge (numpy only, no ROS): action chunks and how to merge them
(chunks), joint limits and the per-command safety filter (safety), and the mode machine that ties them together
with the watchdog, e-stop, enable and dry-run (core). The ROS node only moves messages in and out."""
