"""What people see of the money: the bureau dashboard, the village public pages and the
farmer's unlocked view of a household's payments (docs/dashboards.md)."""
