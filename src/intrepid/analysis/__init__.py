"""intrepid.analysis"""
