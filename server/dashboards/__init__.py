"""What people see of the money: the bureau dashboard and the village public pages
(docs/dashboards.md); the farmer's view of a household's payments is the door plate's
(`server.plate`)."""
