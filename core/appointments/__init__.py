"""Appointments: visits at a clinic and video consultations, from booking (by the patient, or referred
from a written consultation) through reminders, forms and arrival to payment or invoice, surveys and
deletion when the purpose is fulfilled (docs/appointments.md)."""
