"""bagboard: a dashboard for ROS recordings and their ML labels."""

__version__ = "0.1.0"
