-- The carrier's transcription of a voicemail, shown with the call and its callback task.
ALTER TABLE calls ADD COLUMN voicemail_transcript TEXT;
