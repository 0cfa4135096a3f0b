"""Operations endpoints: four-letter words, the AdminServer, metrics."""
