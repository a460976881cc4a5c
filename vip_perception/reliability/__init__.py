"""Reliability checks that need no ROS: fuzzing of image conversion and preprocessing.

The DDS-level checks (flood, soak) live in ``vip_perception.ros`` because they need rclpy.
"""
