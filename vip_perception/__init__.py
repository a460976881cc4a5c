"""vip_perception: deadline-aware CNN perception with Virtual Pooling (ViP) model families.

The core (``vip``, ``models``, ``data``, ``bank``, ``runtime``) never imports rclpy; only
``vip_perception.ros`` does.
"""

__version__ = "0.1.0"
