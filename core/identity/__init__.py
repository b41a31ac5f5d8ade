"""Who someone is: national IDs (Norwegian and Swedish), phone numbers, persons, logins through an
identity provider and sessions, and the actor an operation runs as."""
