"""The fixed list of reasons a delivery falls short or fails, and what follows from each.

One table, read by the driver page (its select list), the API schemas, the follow-up
rule and the customer messages, so a reason means the same everywhere. Every reason but
``refused`` earns a re-delivery order for what was not delivered: a customer who refused
the goods does not want them brought again, so those only go back to stock.
"""

from __future__ import annotations

__all__ = ["NO_REDELIVERY", "REASONS", "needs_notes"]

# code: (English, Bahasa Indonesia)
REASONS: dict[str, tuple[str, str]] = {
    "customer_absent": ("Customer not present", "Pelanggan tidak ada di tempat"),
    "refused": ("Customer refused the goods", "Pelanggan menolak barang"),
    "damaged": ("Goods damaged", "Barang rusak"),
    "wrong_item": ("Wrong item", "Barang salah"),
    "address_not_found": ("Address not found", "Alamat tidak ditemukan"),
    "no_access": ("No access to the address", "Tidak ada akses ke alamat"),
    "business_closed": ("Business closed", "Tempat usaha tutup"),
    "short_loaded": ("Goods missing from the van", "Barang tidak termuat di kendaraan"),
    "payment_refused": ("Cash on delivery not paid", "Pembayaran di tempat tidak dibayar"),
    "out_of_time": ("No time left on the trip", "Waktu perjalanan habis"),
    "vehicle_problem": ("Vehicle problem", "Kendaraan bermasalah"),
    "other": ("Other (see the driver's notes)", "Lainnya (lihat catatan pengemudi)"),
}
NO_REDELIVERY = frozenset({"refused"})


def needs_notes(reason: str) -> bool:
    """``other`` says nothing by itself: the driver must write what happened."""
    return reason == "other"
