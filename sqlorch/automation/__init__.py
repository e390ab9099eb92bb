"""Automation: schedules, sensors and declarative automation, `sqlorch tick` and the daemon.

`definitions` reads what the settings, dbt `meta.sqlorch.automation` and `@asset(automation=)`
declare; `evaluate` decides, purely and with the clock passed in, what is due and why;
`facts` gathers what it decides on; `ticks` commits an evaluation and launches its one run;
`runner` is the process a run is launched as; `daemon` is the long-lived loop.
"""
