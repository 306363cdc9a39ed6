"""Analysis passes over the graph IR: shapes, costs, memory. Pure Python."""
