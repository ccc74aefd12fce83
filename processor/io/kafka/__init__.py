"""io/kafka"""
