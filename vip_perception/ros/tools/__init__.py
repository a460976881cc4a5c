"""Programs that start the node and camera processes and watch them over DDS: the demo, the
soak, the malformed-image flood, plus what they share (``processes``) and the live detection
score. They import rclpy; the commands in ``vip_perception.commands`` call them."""
