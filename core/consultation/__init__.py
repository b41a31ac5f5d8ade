"""The consultation: who may see which case, the case and its states, submitting it and the fee,
consents, the questionnaire, messages, images, the clinician's answer, journal notes and SMS notices."""
