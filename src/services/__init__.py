"""Services: the application's logic, free of Dash and Flask. Views reach them through the container."""
