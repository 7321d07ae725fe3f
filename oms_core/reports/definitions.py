"""What each KPI means, written once: the README's "Reports and KPIs" table is generated
from these (``python -m menara.docs``), and the report's JSON carries them.

A delivery is an order with an outcome (an ePOD: delivered, partially delivered or
failed), counted on its trip's day. Every rate is counted from per-order rows
(``order_delivery_kpis``): numerator and denominator are order counts in the same group,
never a product or average of other rates.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KPIS", "STAGES", "Kpi", "kpi_table"]


@dataclass(frozen=True, slots=True)
class Kpi:
    """One KPI: the report column(s) holding it and its definition."""

    name: str
    columns: str
    definition: str


# The five stages of an order's lead time, in order (``order_delivery_kpis``).
STAGES = ("processing", "waiting_dispatch", "loading", "transit", "at_customer")

KPIS = (
    Kpi(
        "Deliveries",
        "`deliveries`",
        "Orders with an outcome (ePOD) on the group's trips' days: delivered, partially"
        " delivered and failed attempts all count.",
    ),
    Kpi(
        "On-time rate",
        "`on_time`, `on_time_rate`",
        "Share of deliveries whose stop arrival (the earlier of geofence and driver tap) was"
        " inside the order's window; failures are `late` (after the window), `early` (arrived"
        " and handed over before it) or `no_arrival`.",
    ),
    Kpi(
        "In-full rate",
        "`in_full`, `in_full_rate`",
        "Share of deliveries where every line was delivered at its ordered quantity;"
        " failures are `short_delivered` or `not_delivered`.",
    ),
    Kpi(
        "OTIF",
        "`otif`, `otif_rate`",
        "Share of deliveries that were both on time and in full (the same order meets both).",
    ),
    Kpi(
        "Perfect-delivery rate",
        "`perfect`, `perfect_rate`",
        "Share of deliveries that were on time, in full, damage free and with accurate"
        " documents (invoice, COD amount), from the per-order `perfect_deliveries` rows."
        " Each criterion's failures are listed by reason code in the `failures` section.",
    ),
    Kpi(
        "Damage-free / documents-accurate rate",
        "`damage_free_rate`, `documents_accurate_rate`",
        "Share of deliveries with no damaged units / with documents matching the delivery.",
    ),
    Kpi(
        "Delivery time",
        "`avg_lead_time_s`, `p90_lead_time_s`",
        "Order entry to the recorded outcome, in seconds: mean and 90th percentile"
        " (continuous) over the group's deliveries.",
    ),
    Kpi(
        "Delivery time by stage",
        "`stages` section: `avg_s`, `p90_s`, `share`",
        "The lead time split at five boundaries: processing (entry → reserved), waiting for"
        " dispatch (→ its trip released), loading (→ the van left the depot), transit (→"
        " arrival at the stop), at customer (→ outcome recorded). A missing boundary takes"
        " the next one's time; `share` is the stage's mean over the mean lead time.",
    ),
    Kpi(
        "Lateness by stage",
        "`late`, `stages` section: `late_attributed`",
        "Each late delivery is blamed on one stage: the larger overrun of the plan before"
        " departure (actual − planned departure: processing if the order was reserved after"
        " the planned departure, else waiting for dispatch if released after it, else"
        " loading) or in transit (actual − planned depot-to-stop time); `plan` when neither"
        " overran and the plan itself arrived after the window.",
    ),
    Kpi(
        "Planned vs actual distance and duration",
        "`trips` section",
        "Per trip: planned distance along its route geometry (straight legs depot → stops →"
        " depot without one) against the great-circle sum between the tracker's consecutive"
        " valid fixes from departure to return; planned (departure → return) against actual"
        " duration, and their differences.",
    ),
    Kpi(
        "Geofence vs tap arrivals",
        "`arrivals_geofence`, `arrivals_tap`, `geofence_share`, `tap_share`",
        "Share of deliveries whose stop arrival was first detected by the geofence / first"
        " tapped by the driver (a dispatcher's manual arrival counts in neither).",
    ),
    Kpi(
        "Alerts and time to acknowledge",
        "`alerts` section",
        "Alerts of the group's trips' days by type: how many, how many were acknowledged,"
        " how many nobody acknowledged or resolved yet, and the mean and 90th percentile of"
        " the time to acknowledge (acknowledged_at − created_at, seconds).",
    ),
    Kpi(
        "Complaints per 100 deliveries",
        "`complaints`, `complaints_per_100`",
        "Customer complaints about the group's deliveries × 100 / deliveries.",
    ),
)


def kpi_table() -> str:
    """The README table (markdown)."""
    rows = ["| KPI | report columns | definition |", "|---|---|---|"]
    rows += [f"| {k.name} | {k.columns} | {k.definition} |" for k in KPIS]
    return "\n".join(rows)
