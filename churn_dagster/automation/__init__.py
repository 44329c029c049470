"""The automation of the code location: the landing sensor that ingests each delivered day (:mod:`.landing`),
and the daily retraining schedule with the sensor that builds each newly completed cohort (:mod:`.retrain`)."""
