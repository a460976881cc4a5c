"""The ROS 2 layer: the only code in the package that imports rclpy."""
